# Tests of the obligations policy attaches to a decision.
package bastion.obligations_test

import data.bastion.authz

call(roles, upstream, tool, approval) := {
	"principal": {"subject": "alice", "tenant": "acme", "roles": roles, "scopes": [], "auth_method": "api_key"},
	"action": "tools/call",
	"resource": {"upstream": upstream, "tool": tool, "arguments": {"name": "sales"}},
	"context": {"time": "2026-05-01T10:00:00Z", "client_address": "127.0.0.1", "approval": approval},
}

obligations(request) := result if {
	result := authz.decision.obligations with input as request with data.bastion.grants.subjects as {"alice": {"datasets": ["sales"]}}
}

test_viewers_get_a_row_limit_and_redaction if {
	o := obligations(call(["viewer"], "analytics", "list_datasets", "none"))
	o.row_limit == 1000
	o.redact == ["email", "phone", "ssn"]
	o.rate == {"per_minute": 60, "burst": 20}
	o.require_approval == false
}

test_admins_have_no_row_limit_and_see_everything if {
	o := obligations(call(["admin"], "system", "version", "none"))
	o.row_limit == null
	o.redact == []
	o.allowed_datasets == null
	o.allowed_collections == null
}

test_several_roles_get_the_most_permissive_obligations if {
	o := obligations(call(["viewer", "analyst"], "analytics", "list_datasets", "none"))
	o.row_limit == 10000
	o.redact == []
	o.rate == {"per_minute": 300, "burst": 60}
	o.allowed_datasets == ["sales"]
}

test_a_dangerous_tool_needs_approval_for_non_admins if {
	decision := authz.decision with input as call(["analyst"], "analytics", "drop_dataset", "none") with data.bastion.grants.subjects as {"alice": {"datasets": ["sales"]}}
	decision.allow
	decision.obligations.require_approval
	"approval: analytics_drop_dataset needs a human approval first (rule dangerous_tools)" in decision.reasons
}

test_a_dangerous_argument_needs_approval_for_non_admins if {
	prune := object.union(call(["analyst"], "retrieval", "ingest", "none"), {"resource": {"arguments": {"collection": "docs", "prune": true}}})
	decision := authz.decision with input as prune with data.bastion.grants.subjects as {"alice": {"collections": ["docs"]}}
	decision.allow
	decision.obligations.require_approval
	"approval: retrieval_ingest needs a human approval first (rule dangerous_tools)" in decision.reasons
	plain := object.union(prune, {"resource": {"arguments": {"collection": "docs", "prune": false}}})
	not obligations(plain).require_approval
	not obligations(object.union(prune, {"principal": {"roles": ["admin"]}})).require_approval
}

test_an_approved_request_needs_no_further_approval if {
	o := obligations(call(["analyst"], "analytics", "drop_dataset", "approved"))
	o.require_approval == false
}

test_a_rejected_approval_denies_the_call if {
	decision := authz.decision with input as call(["analyst"], "analytics", "drop_dataset", "rejected") with data.bastion.grants.subjects as {"alice": {"datasets": ["sales"]}}
	not decision.allow
	decision.reasons == ["deny: the approval of analytics_drop_dataset was rejected (rule approval)"]
}

test_admins_are_exempt_from_approval_unless_a_tool_always_needs_it if {
	obligations(call(["admin"], "analytics", "drop_dataset", "none")).require_approval == false
	o := authz.decision.obligations with input as call(["admin"], "analytics", "drop_dataset", "none") with data.bastion.tools.approval_always as ["analytics/drop_dataset"]
	o.require_approval
}

test_a_subject_can_carry_its_own_limits if {
	subjects := {"alice": {"row_limit": 50, "rate": {"per_minute": 5, "burst": 1}}}
	o := authz.decision.obligations with input as call(["analyst"], "analytics", "list_datasets", "none") with data.bastion.grants.subjects as subjects
	o.row_limit == 50
	o.rate == {"per_minute": 5, "burst": 1}
}

test_a_denied_request_still_carries_well_formed_obligations if {
	decision := authz.decision with input as {"action": "tools/call"}
	not decision.allow
	decision.obligations == {
		"require_approval": false,
		"redact": [],
		"row_limit": 0,
		"rate": null,
		"allowed_collections": [],
		"allowed_datasets": [],
	}
}

test_a_listing_carries_no_obligations if {
	request := object.union(call(["admin"], "analytics", "drop_dataset", "none"), {"action": "tools/list"})
	decision := authz.decision with input as request
	decision.allow
	decision.obligations.row_limit == 0
	decision.obligations.allowed_datasets == []
}

test_a_request_without_an_action_is_still_decided if {
	decision := authz.decision with input as {"principal": {"subject": "alice", "roles": ["admin"]}}
	not decision.allow
	decision.obligations.row_limit == null
}
