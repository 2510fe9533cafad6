# Deny rules of bastion.authz. Each message starts with "deny:" and ends with the rule that
# produced it, so a client, the audit log and an admin can all tell why a request failed.
package bastion.authz

# known_actions: the gateway only asks about these actions, each naming what it acts on.
deny contains sprintf("deny: unknown action %v (rule known_actions)", [object.get(input, "action", null)]) if {
	not kind
}

deny contains sprintf("deny: %s needs a resource with an upstream and a %s (rule known_actions)", [input.action, actions[input.action].field]) if {
	kind != "rest"
	not target
}

# principal_required: every request carries an authenticated subject.
deny contains "deny: the request has no authenticated subject (rule principal_required)" if {
	not authenticated
}

authenticated if {
	is_string(input.principal.subject)
	input.principal.subject != ""
}

# When nothing grants the request, every role of the caller says why it does not.
deny contains msg if {
	not granted
	some msg in refusals
}

# known_roles: roles that data does not define grant nothing.
refusals contains sprintf("deny: subject %v has no known role (roles: %v) (rule known_roles)", [object.get(input.principal, "subject", null), object.get(input.principal, "roles", [])]) if {
	count(roles) == 0
}

refusals contains sprintf("deny: role %s may not %s %s (rule %s)", [role, verb, display, refusal_rule(role)]) if {
	target
	some role in roles
}

# role_grants: the role's patterns do not match; viewers_read_only: a read-only role meets a
# tool that is not read-only; role_networks: the client is outside the role's networks.
refusal_rule(role) := "role_grants" if {
	not matches(object.get(grants.roles[role], kind, []), target)
} else := "viewers_read_only" if {
	read_only_blocked(role)
} else := sprintf("role_networks, client %v", [object.get(input.context, "client_address", null)])

# grant_expiry: say so when the subject's own grants have lapsed.
refusals contains sprintf("deny: the grants of subject %s expired at %s (rule grant_expiry)", [input.principal.subject, grant.until]) if {
	grant := grants.subjects[input.principal.subject]
	not grant_current(grant)
}

# admin_only_tools: some tools belong to admins whatever other grants say.
deny contains sprintf("deny: %s is reserved to admins (rule admin_only_tools)", [display]) if {
	kind == "tools"
	matches(tools.admin_only, target)
	not "admin" in roles
}

# oauth_scopes: scopes on a token narrow what its roles allow, never widen it.
deny contains sprintf("deny: token scopes %v include none of %v needed for %s (rule oauth_scopes)", [scopes, needed, input.action]) if {
	scopes := input.principal.scopes
	count(scopes) > 0
	needed := object.get(grants.scopes, scope_key, [])
	not scope_held(scopes, needed)
}

scope_key := "rest" if kind == "rest" else := input.action

scope_held(scopes, needed) if {
	some scope in scopes
	scope in needed
}

# granted_datasets / granted_collections: arguments that name datasets or collections must
# name ones the caller holds (data.bastion.tools.arguments says which arguments do);
# argument_types: such an argument is a name or a list of names, nothing else.
deny contains msg if {
	input.action == "tools/call"
	some pattern, spec in tools.arguments
	matches([pattern], target)
	some argument, holding in spec
	value := input.resource.arguments[argument]
	value != null
	some msg in argument_refusals(argument, value, holding)
}

argument_refusals(argument, value, holding) := [msg |
	some name in names(value)
	not held(holding, name)
	msg := sprintf("deny: %s %q is not granted to %s (argument %s of %s) (rule granted_%s)", [trim_suffix(holding, "s"), name, input.principal.subject, argument, display, holding])
] if names(value)

argument_refusals(argument, value, _) := [sprintf("deny: argument %s of %s must be a name or a list of names (rule argument_types)", [argument, display])] if {
	not names(value)
}

names(value) := [value] if is_string(value)

names(value) := value if {
	is_array(value)
	every item in value {
		is_string(item)
	}
}

held(holding, _) if "*" in holdings[holding]

held(holding, name) if name in holdings[holding]

# approval: a rejected approval ends the request.
deny contains sprintf("deny: the approval of %s was rejected (rule approval)", [display]) if {
	input.action == "tools/call"
	input.context.approval == "rejected"
}
