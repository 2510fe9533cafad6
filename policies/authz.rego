# Bastion's authorization policy: one decision document per request.
#
# The gateway evaluates `data.bastion.authz.decision` (OPA: POST /v1/data/bastion/authz/decision)
# with the input described in docs/policy.md and reads
#     {"allow": bool, "reasons": [string], "obligations": {...}}
# Default deny: a request is allowed only when one of the caller's roles, or a grant made to
# the caller's subject, matches it and no deny rule fires. Every denial names its rule.
# Role grants, tool classes and argument rules are data (data.json), not code.
#
# Written for speed as well as clarity: an embedded evaluation costs about two microseconds
# per rule it visits, so request facts are computed once, in a few rules, and patterns are
# matched with string prefixes rather than globs.
package bastion.authz

grants := data.bastion.grants

tools := data.bastion.tools

# -- the request --------------------------------------------------------------

# The actions the gateway asks about: what each acts on, the verb reasons use, and the
# resource field that names the target.
actions := {
	"tools/call": {"kind": "tools", "verb": "call", "field": "tool"},
	"tools/list": {"kind": "tools", "verb": "list", "field": "tool"},
	"resources/read": {"kind": "resources", "verb": "read", "field": "uri"},
	"prompts/get": {"kind": "prompts", "verb": "get", "field": "prompt"},
}

kind := actions[input.action].kind

kind := "rest" if {
	is_string(input.action)
	startswith(input.action, "rest:")
}

verb := actions[input.action].verb

verb := "request" if kind == "rest"

# What grants match: `<upstream>/<name>` for tools, resources and prompts (a resource's name
# is its URI), `METHOD /path` for a REST route.
target := sprintf("%s/%s", [input.resource.upstream, name]) if {
	name := input.resource[actions[input.action].field]
	is_string(input.resource.upstream)
	is_string(name)
}

target := trim_space(substring(input.action, 5, -1)) if kind == "rest"

# How reasons name the target: the exposed name when the gateway sends one.
display := input.resource.name if {
	is_string(input.resource.name)
} else := concat("_", [input.resource.upstream, input.resource.tool]) if {
	kind == "tools"
	target
} else := target if {
	target
} else := "an unnamed resource"

# A pattern is a target, or a prefix ending in `*`: "analytics/*" is every tool of the
# analytics upstream, "GET /api/*" every GET route under /api, "*" everything.
matches(patterns, value) if value in patterns

matches(patterns, value) if {
	some pattern in patterns
	endswith(pattern, "*")
	startswith(value, trim_suffix(pattern, "*"))
}

# -- who is asking ------------------------------------------------------------

roles := {role | some role in input.principal.roles; grants.roles[role]}

# Grants made to one subject; `until` (RFC 3339) ends them, judged on the minute-rounded clock.
subject_grant := grant if {
	grant := grants.subjects[input.principal.subject]
	grant_current(grant)
} else := {}

grant_current(grant) if not grant.until

grant_current(grant) if time.parse_rfc3339_ns(input.context.time) < time.parse_rfc3339_ns(grant.until)

# The datasets and collections the caller holds, through its roles and its subject.
holdings[name] := {value | some role in roles; some value in object.get(grants.roles[role], name, [])} | {value | some value in object.get(subject_grant, name, [])} if {
	some name in ["datasets", "collections"]
}

# -- what grants the request --------------------------------------------------

granting_roles contains role if {
	some role in roles
	matches(object.get(grants.roles[role], kind, []), target)
	not read_only_blocked(role)
	not network_blocked(role)
}

subject_matches if matches(object.get(subject_grant, kind, []), target)

default granted := false

granted if count(granting_roles) > 0

granted if subject_matches

# viewers_read_only: a role marked `read_only` may only reach tools classed read-only, by
# data or, for upstreams trusted to say so, by the tool's `readOnlyHint` annotation.
read_only_blocked(role) if {
	grants.roles[role].read_only == true
	kind == "tools"
	not read_only_tool
}

read_only_tool if matches(tools.read_only, target)

read_only_tool if {
	input.resource.annotations.readOnlyHint == true
	input.resource.upstream in tools.trusted_hints
}

# role_networks: a role with `networks` (CIDRs) grants only to clients inside them.
network_blocked(role) if {
	networks := grants.roles[role].networks
	count(networks) > 0
	not client_in(networks)
}

client_in(networks) if {
	some cidr in networks
	net.cidr_contains(cidr, input.context.client_address)
}

# -- decision -----------------------------------------------------------------

default allow := false

allow if {
	granted
	count(deny) == 0
}

decision := {
	"allow": allow,
	"reasons": reasons,
	"obligations": obligations,
}

reasons := sort([reason | some reason in deny]) if not allow

reasons := array.concat(
	[sprintf("allow: role %s may %s %s (rule role_grants)", [role, verb, display]) | some role in sort([r | some r in granting_roles])],
	array.concat(
		[sprintf("allow: subject %s is granted %s (rule subject_grants)", [input.principal.subject, display]) | subject_matches],
		[sprintf("approval: %s needs a human approval first (rule dangerous_tools)", [display]) | obligations.require_approval],
	),
) if allow
