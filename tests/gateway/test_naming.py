"""Exposed names are valid, stable, unique and never split to find their upstream."""

from __future__ import annotations

from gateway.catalog import ViewConfig, build_view
from gateway.naming import NAME_PATTERN, NameTable, Target, expose_name
from gateway.upstreams.connection import Catalog


def test_plain_names_are_prefixed_with_their_upstream() -> None:
    table = NameTable()
    assert table.add("analytics", "query") == "analytics_query"
    assert table.resolve("analytics_query") == Target("analytics", "query")


def test_underscores_in_both_parts_resolve_through_the_table_not_by_splitting() -> None:
    table = NameTable()
    a = table.add("my_server", "get_data")
    b = table.add("my", "server_get_data")
    assert a == "my_server_get_data"
    assert b != a and NAME_PATTERN.match(b)
    assert table.resolve(a) == Target("my_server", "get_data")
    assert table.resolve(b) == Target("my", "server_get_data")


def test_of_two_colliding_names_the_longer_named_upstream_keeps_the_plain_one_whoever_came_first() -> None:
    """Upstreams connect side by side, so the table's order of arrival differs between
    starts; knowing every upstream's name, it gives the same names either way."""
    for order in (
        (("my_server", "get_data"), ("my", "server_get_data")),
        (("my", "server_get_data"), ("my_server", "get_data")),
    ):
        table = NameTable(upstreams=["my", "my_server", "other"])
        exposed = {target: table.add(*target) for target in order}
        assert exposed[("my_server", "get_data")] == "my_server_get_data"
        hashed = exposed[("my", "server_get_data")]
        assert hashed.startswith("my_server_get_data_") and NAME_PATTERN.match(hashed)
        assert table.resolve(hashed) == Target("my", "server_get_data")
    # The rule needs no collision to apply: the same tool gets the same name alone too.
    alone = NameTable(upstreams=["my", "my_server"])
    assert alone.add("my", "server_get_data") == hashed
    assert alone.add("my", "servers") == "my_servers"  # `my_servers` names no other upstream
    assert NameTable(upstreams=["my", "my_server"], prefix=False).add("my", "server_x") == "server_x"


def test_invalid_characters_and_long_names_get_a_stable_hash_suffix() -> None:
    long_name = "x" * 100
    first = expose_name("everything", long_name)
    assert len(first) == 64 and NAME_PATTERN.match(first)
    assert first == expose_name("everything", long_name)  # stable across restarts
    dotted = expose_name("files", "read.file/v2")
    assert NAME_PATTERN.match(dotted) and dotted.startswith("files_read_file_v2_")
    assert expose_name("files", "read.file/v2") != expose_name("files", "read_file_v2")


def test_the_same_original_always_maps_to_the_same_exposed_name() -> None:
    table = NameTable()
    assert table.add("s", "t") == table.add("s", "t")
    assert len(table) == 1


def test_a_single_upstream_view_keeps_original_names() -> None:
    table = NameTable(prefix=False)
    assert table.add("conformance", "test_simple_text") == "test_simple_text"


def test_a_single_upstream_view_keeps_its_names_whatever_else_is_connected() -> None:
    """Two upstreams with the same tool names: each one's own virtual server shows them plain,
    in whichever order the upstreams connected."""
    tools = [{"name": "echo", "inputSchema": {"type": "object"}}]

    def catalog() -> Catalog:
        found = Catalog()
        found.tools = list(tools)
        return found

    for order in (("a", "b"), ("b", "a")):
        for own in order:
            config = ViewConfig(name=f"only-{own}", upstreams=frozenset({own}))
            table = NameTable(prefix=config.prefixed)
            view = None
            connected: dict[str, Catalog] = {}
            for upstream in order:  # rebuilt as each upstream connects, with one name table
                connected[upstream] = catalog()
                view = build_view(config, connected, table)
            assert view is not None
            assert list(view.tools) == ["echo"]
            assert view.tools["echo"].upstream == own


def test_resource_names_say_whose_they_are_and_uris_stay_as_written() -> None:
    catalog = Catalog()
    catalog.resources = [{"uri": "docs://guide", "name": "guide"}]
    catalog.templates = [{"uriTemplate": "docs://pages/{page}", "name": "page"}]
    for config, name in (
        (ViewConfig(name=""), "docs_guide"),
        (ViewConfig(name="d", upstreams=frozenset({"docs"})), "guide"),
    ):
        view = build_view(config, {"docs": catalog}, NameTable(prefix=config.prefixed))
        assert view.resource_list == [{"uri": "docs://guide", "name": name}]
        assert [t["name"] for t in view.template_definitions()] == [name.replace("guide", "page")]
        assert view.resource_upstream("docs://guide") == "docs"
        assert view.resource_upstream("docs://pages/intro") == "docs"
        # Metrics name a templated read by its template: one series, however many pages.
        assert view.resource_label("docs://guide") == "docs://guide"
        assert view.resource_label("docs://pages/intro") == "docs://pages/{page}"
    assert catalog.resources[0]["name"] == "guide"  # the upstream's own catalog is untouched


def test_a_uri_goes_to_the_template_that_covers_it_most_specifically() -> None:
    """RFC 6570: `{table}` stops at `/`, `{?q}` may be absent; of two matches the more
    specific wins, and a completion's template reference finds its own upstream."""
    alpha, beta = Catalog(), Catalog()
    alpha.templates = [{"uriTemplate": "db://{table}", "name": "table"}]
    beta.templates = [
        {"uriTemplate": "db://{schema}/{table}", "name": "schema_table"},
        {"uriTemplate": "search://items{?q}", "name": "search"},
        {"uriTemplate": "files://{+path}", "name": "file"},
        {"uriTemplate": "odd://{not a variable!}", "name": "odd"},  # unparsable: matched loosely
    ]
    view = build_view(ViewConfig(name=""), {"alpha": alpha, "beta": beta})
    routes = {
        "db://orders": "alpha",
        "db://sales/orders": "beta",
        "search://items": "beta",
        "search://items?q=x": "beta",
        "files://a/b/c.txt": "beta",
        "odd://thing": "beta",
        "db://{schema}/{table}": "beta",  # a completion names the template itself
    }
    assert {uri: view.resource_upstream(uri) for uri in routes} == routes
    assert view.resource_upstream("nowhere://x") is None
    assert view.resource_label("db://sales/orders") == "db://{schema}/{table}"
