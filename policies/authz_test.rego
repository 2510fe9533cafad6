# Tests of who may reach what: roles, subjects, read-only viewers, admins-only tools,
# networks, scopes and default deny. Run them with `bastion policy test`.
package bastion.authz_test

import data.bastion.authz

principal(roles) := {"subject": "alice", "tenant": "acme", "roles": roles, "scopes": [], "auth_method": "api_key"}

call(roles, upstream, tool, arguments) := {
	"principal": principal(roles),
	"action": "tools/call",
	"resource": {"upstream": upstream, "tool": tool, "arguments": arguments},
	"context": {"time": "2026-05-01T10:00:00Z", "client_address": "127.0.0.1", "approval": "none"},
}

listing(roles, upstream, tool) := object.union(call(roles, upstream, tool, {}), {"action": "tools/list"})

decide(request) := decision if {
	decision := authz.decision with input as request
}

test_admin_may_call_any_tool if {
	decision := decide(call(["admin"], "analytics", "drop_dataset", {"name": "sales"}))
	decision.allow
	decision.reasons == ["allow: role admin may call analytics_drop_dataset (rule role_grants)"]
}

test_analyst_may_call_analytics_tools if {
	decide(call(["analyst"], "analytics", "query", {"sql": "select 1"})).allow
}

test_analyst_may_not_call_tools_of_an_external_upstream if {
	decision := decide(call(["analyst"], "everything", "echo", {"message": "hi"}))
	not decision.allow
	decision.reasons == ["deny: role analyst may not call everything_echo (rule role_grants)"]
}

test_viewer_may_not_call_a_tool_that_is_not_read_only if {
	decision := decide(call(["viewer"], "analytics", "query", {"sql": "select 1"}))
	not decision.allow
	decision.reasons == ["deny: role viewer may not call analytics_query (rule viewers_read_only)"]
}

test_viewer_may_call_a_read_only_tool if {
	decide(call(["viewer"], "analytics", "list_datasets", {})).allow
}

test_viewer_sees_only_read_only_tools_in_a_listing if {
	decide(listing(["viewer"], "retrieval", "search")).allow
	not decide(listing(["viewer"], "retrieval", "ingest")).allow
}

test_read_only_hint_counts_only_for_trusted_upstreams if {
	request := object.union(call(["viewer"], "everything", "echo", {}), {"resource": {"annotations": {"readOnlyHint": true}}})
	not decide(request).allow
	decision := authz.decision with input as request with data.bastion.tools.trusted_hints as ["everything"]
	decision.allow
}

test_a_role_with_both_grants_reaches_the_union if {
	decide(call(["viewer", "analyst"], "analytics", "query", {"sql": "select 1"})).allow
}

test_service_principal_reaches_only_what_its_subject_is_granted if {
	request := object.union(call(["service"], "retrieval", "ingest", {"collection": "docs"}), {"principal": {"subject": "svc:ingest"}})
	not decide(request).allow
	subjects := {"svc:ingest": {"tools": ["retrieval/ingest"], "collections": ["docs"]}}
	decision := authz.decision with input as request with data.bastion.grants.subjects as subjects
	decision.allow
	decision.reasons == ["allow: subject svc:ingest is granted retrieval_ingest (rule subject_grants)"]
	decision.obligations.allowed_collections == ["docs"]
}

test_subject_grants_end_at_their_expiry if {
	subjects := {"alice": {"tools": ["everything/echo"], "until": "2026-05-01T10:00:00Z"}}
	decision := authz.decision with input as call(["analyst"], "everything", "echo", {}) with data.bastion.grants.subjects as subjects
	not decision.allow
	"deny: the grants of subject alice expired at 2026-05-01T10:00:00Z (rule grant_expiry)" in decision.reasons
	earlier := object.union(call(["analyst"], "everything", "echo", {}), {"context": {"time": "2026-05-01T09:59:00Z"}})
	authz.decision.allow with input as earlier with data.bastion.grants.subjects as subjects
}

test_unknown_roles_grant_nothing if {
	decision := decide(call(["superuser"], "system", "version", {}))
	not decision.allow
	decision.reasons == [`deny: subject alice has no known role (roles: ["superuser"]) (rule known_roles)`]
}

test_a_request_without_a_subject_is_denied if {
	request := object.union(call(["admin"], "system", "version", {}), {"principal": {"subject": ""}})
	decision := decide(request)
	not decision.allow
	"deny: the request has no authenticated subject (rule principal_required)" in decision.reasons
}

test_unknown_actions_are_denied if {
	request := object.union(call(["admin"], "system", "version", {}), {"action": "tools/delete"})
	decision := decide(request)
	not decision.allow
	decision.reasons == ["deny: unknown action tools/delete (rule known_actions)"]
}

test_a_call_that_names_no_tool_is_denied if {
	request := {"principal": principal(["admin"]), "action": "tools/call", "resource": {"upstream": "system"}}
	decision := decide(request)
	not decision.allow
	decision.reasons == ["deny: tools/call needs a resource with an upstream and a tool (rule known_actions)"]
}

test_register_source_is_reserved_to_admins if {
	subjects := {"alice": {"tools": ["analytics/register_source"]}}
	decision := authz.decision with input as call(["analyst"], "analytics", "register_source", {"name": "crm"}) with data.bastion.grants.subjects as subjects
	not decision.allow
	"deny: analytics_register_source is reserved to admins (rule admin_only_tools)" in decision.reasons
	decide(call(["admin"], "analytics", "register_source", {"name": "crm"})).allow
}

test_a_role_with_networks_grants_only_inside_them if {
	inside := authz.decision with input as call(["admin"], "system", "version", {}) with data.bastion.grants.roles.admin.networks as ["127.0.0.0/8"]
	inside.allow
	outside_request := object.union(call(["admin"], "system", "version", {}), {"context": {"client_address": "10.1.2.3"}})
	outside := authz.decision with input as outside_request with data.bastion.grants.roles.admin.networks as ["127.0.0.0/8"]
	not outside.allow
	outside.reasons == ["deny: role admin may not call system_version (rule role_networks, client 10.1.2.3)"]
}

test_token_scopes_narrow_what_roles_allow if {
	scoped := object.union(call(["admin"], "system", "version", {}), {"principal": {"scopes": ["mcp:read"]}})
	decision := decide(scoped)
	not decision.allow
	decision.reasons == [`deny: token scopes ["mcp:read"] include none of ["mcp", "mcp:tools"] needed for tools/call (rule oauth_scopes)`]
	listed := object.union(scoped, {"action": "tools/list"})
	decide(listed).allow
}

test_rest_routes_follow_role_grants if {
	get := {"principal": principal(["viewer"]), "action": "rest:GET /api/datasets", "resource": {}}
	decide(get).allow
	post := object.union(get, {"action": "rest:POST /api/keys"})
	decision := decide(post)
	not decision.allow
	decision.reasons == ["deny: role viewer may not request POST /api/keys (rule role_grants)"]
}

test_resources_and_prompts_follow_role_grants if {
	read := {"principal": principal(["viewer"]), "action": "resources/read", "resource": {"upstream": "retrieval", "uri": "bastion://collections"}}
	decide(read).allow
	prompt := {"principal": principal(["service"]), "action": "prompts/get", "resource": {"upstream": "retrieval", "prompt": "summarise"}}
	decision := decide(prompt)
	not decision.allow
	decision.reasons == ["deny: role service may not get retrieval/summarise (rule role_grants)"]
}

test_the_exposed_name_is_used_in_reasons_when_given if {
	request := object.union(call(["viewer"], "analytics", "query", {}), {"resource": {"name": "analytics_query_2f9a"}})
	decide(request).reasons == ["deny: role viewer may not call analytics_query_2f9a (rule viewers_read_only)"]
}
