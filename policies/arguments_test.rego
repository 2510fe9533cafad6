# Tests of per-argument rules: datasets and collections named in arguments must be granted.
package bastion.arguments_test

import data.bastion.authz

call(roles, upstream, tool, arguments) := {
	"principal": {"subject": "alice", "tenant": "acme", "roles": roles, "scopes": [], "auth_method": "api_key"},
	"action": "tools/call",
	"resource": {"upstream": upstream, "tool": tool, "arguments": arguments},
	"context": {"time": "2026-05-01T10:00:00Z", "client_address": "127.0.0.1", "approval": "none"},
}

alice_grants := {"alice": {"datasets": ["sales", "crm"], "collections": ["handbook"]}}

decide(request) := decision if {
	decision := authz.decision with input as request with data.bastion.grants.subjects as alice_grants
}

test_analyst_may_query_a_granted_source if {
	decide(call(["analyst"], "analytics", "query", {"sql": "select 1", "source": "crm"})).allow
}

test_analyst_may_not_query_a_source_not_granted if {
	decision := decide(call(["analyst"], "analytics", "query", {"sql": "select 1", "source": "hr"}))
	not decision.allow
	decision.reasons == [`deny: dataset "hr" is not granted to alice (argument source of analytics_query) (rule granted_datasets)`]
}

test_analyst_may_describe_only_granted_datasets if {
	decide(call(["analyst"], "analytics", "describe", {"dataset": "sales"})).allow
	not decide(call(["analyst"], "analytics", "describe", {"dataset": "payroll"})).allow
}

test_a_query_without_source_is_allowed_and_limited_by_obligations if {
	decision := decide(call(["analyst"], "analytics", "query", {"sql": "select 1"}))
	decision.allow
	decision.obligations.allowed_datasets == ["crm", "sales"]
}

test_every_collection_in_a_list_must_be_granted if {
	decide(call(["analyst"], "retrieval", "search", {"query": "leave", "collections": ["handbook"]})).allow
	decision := decide(call(["analyst"], "retrieval", "search", {"query": "leave", "collections": ["handbook", "legal", "board"]}))
	not decision.allow
	decision.reasons == [
		`deny: collection "board" is not granted to alice (argument collections of retrieval_search) (rule granted_collections)`,
		`deny: collection "legal" is not granted to alice (argument collections of retrieval_search) (rule granted_collections)`,
	]
}

test_an_argument_of_the_wrong_shape_is_denied if {
	decision := decide(call(["analyst"], "retrieval", "search", {"query": "x", "collection": {"name": "handbook"}}))
	not decision.allow
	decision.reasons == ["deny: argument collection of retrieval_search must be a name or a list of names (rule argument_types)"]
	not decide(call(["analyst"], "retrieval", "search", {"query": "x", "collections": ["handbook", 7]})).allow
}

test_a_null_argument_counts_as_absent if {
	decide(call(["analyst"], "analytics", "query", {"sql": "select 1", "source": null})).allow
}

test_a_wildcard_grant_allows_every_dataset if {
	decision := decide(call(["admin"], "analytics", "query", {"sql": "select 1", "source": "anything"}))
	decision.allow
	decision.obligations.allowed_datasets == null
}

test_dropping_a_dataset_checks_its_name if {
	not decide(call(["analyst"], "analytics", "drop_dataset", {"name": "payroll"})).allow
	decide(call(["analyst"], "analytics", "drop_dataset", {"name": "sales"})).allow
}

test_arguments_are_not_checked_when_listing_tools if {
	request := object.union(call(["analyst"], "analytics", "query", {"source": "hr"}), {"action": "tools/list"})
	decide(request).allow
}
