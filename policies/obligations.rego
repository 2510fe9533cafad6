# Obligations of bastion.authz: what the gateway and the upstream server must enforce when a
# request is allowed. A caller with several roles gets the most permissive value of each:
# roles add access, they never take it away. `null` means "no limit".
package bastion.authz

# A listing runs nothing, so it carries no obligations (and skips computing them).
obligations := {
	"require_approval": false,
	"redact": [],
	"row_limit": 0,
	"rate": null,
	"allowed_collections": [],
	"allowed_datasets": [],
} if listing

obligations := {
	"require_approval": require_approval,
	"redact": redact,
	"row_limit": row_limit,
	"rate": rate,
	"allowed_collections": allowed_values("collections"),
	"allowed_datasets": allowed_values("datasets"),
} if not listing

listing if input.action == "tools/list"

# allowed_datasets / allowed_collections: the names held, or null when "*" is held.
allowed_values(holding) := null if {
	"*" in holdings[holding]
} else := sort([value | some value in holdings[holding]])

# dangerous_tools: these wait for a human unless a role is exempt (admins by default), and so
# do calls whose arguments hold a value `dangerous_arguments` names (an ingest with `prune`
# deletes documents, as delete_document does); `approval_always` tools wait whoever calls
# them. An approved request goes through.
default require_approval := false

require_approval if {
	input.action == "tools/call"
	needs_approval
	object.get(input.context, "approval", "none") != "approved"
}

needs_approval if {
	dangerous_call
	not approval_exempt
}

dangerous_call if matches(tools.dangerous, target)

dangerous_call if {
	some pattern, values in object.get(tools, "dangerous_arguments", {})
	matches({pattern}, target)
	arguments := input.resource.arguments
	is_object(arguments)
	some argument, value in values
	arguments[argument] == value
}

needs_approval if matches(tools.approval_always, target)

approval_exempt if {
	some role in roles
	grants.roles[role].approval_exempt == true
}

# row_limit: a subject's own limit wins; else the largest of its roles' (null if any is null).
row_limit := subject_grant.row_limit if {
	"row_limit" in object.keys(subject_grant)
} else := null if {
	some role in roles
	object.get(grants.roles[role], "row_limit", null) == null
} else := max({grants.roles[role].row_limit | some role in roles}) if {
	count(roles) > 0
} else := 0

# redact: a field stays hidden only if every role of the caller hides it.
redact := sort([field | some field in intersection({{f | some f in object.get(grants.roles[role], "redact", [])} | some role in roles})]) if {
	count(roles) > 0
} else := []

# rate: a subject's own rate wins; else the most generous of its roles'.
rate := subject_grant.rate if {
	is_object(subject_grant.rate)
} else := {
	"per_minute": max({grants.roles[role].rate.per_minute | some role in roles}),
	"burst": max({grants.roles[role].rate.burst | some role in roles}),
} if {
	some held_role in roles
	is_object(grants.roles[held_role].rate)
} else := null
