"""Hostile catalogs: whatever text arrives, loading it ends in a Catalog or in one short CatalogError
line, in time and memory linear in its length — no anchors, aliases, merge keys or tags, bounded
sizes — whether libyaml or PyYAML's own parser reads it."""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterline.catalog import (
    MAX_CATALOG_BYTES,
    MAX_TENANT_BYTES,
    CatalogError,
    key_name_problem,
    load_catalog,
    parse_catalog,
)
from tests.unit.test_catalog import MINIMAL

LONGEST_MESSAGE = 4_096
"""No message is longer, whatever the input: each quotes at most a few short pieces of it."""
FUZZ = settings(max_examples=300, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])
"""Bounded examples; the deadline catches any input whose loading is not cheap (each is ms)."""


@pytest.fixture(params=["libyaml", "pyyaml"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test runs on libyaml's parser and on PyYAML's own (where PyYAML lacks libyaml)."""
    if request.param == "pyyaml":
        monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    elif not hasattr(yaml, "CSafeLoader"):
        pytest.skip("this PyYAML was built without libyaml")
    yield request.param


def refusal(text: str) -> str:
    with pytest.raises(CatalogError) as raised:
        parse_catalog(text)
    return str(raised.value)


def assert_one_short_line(message: str) -> None:
    assert "\n" not in message
    assert len(message) <= LONGEST_MESSAGE, f"{len(message):,} characters: {message[:200]}"


# --- aliases and sizes ----------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_at_its_first_anchor_before_anything_expands(parser: str) -> None:
    # GIVEN a billion laughs: twelve levels of ten aliases each, 10^12 strings once expanded
    levels = ['lol0: &lol0 "lol"'] + [
        f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 10)}]" for i in range(1, 13)
    ]
    bomb = "\n".join(levels) + "\n" + MINIMAL

    # WHEN it is loaded / THEN the first anchor is refused, with its line
    assert refusal(bomb) == (
        "<catalog>:1: &lol0: YAML anchors and aliases are not allowed in a catalog; write the value out"
    )


def test_a_catalog_of_exactly_the_size_limit_loads_and_one_byte_more_is_refused(parser: str) -> None:
    # GIVEN a valid catalog padded with a comment to exactly the limit, in bytes of UTF-8
    padding = MAX_CATALOG_BYTES - len(MINIMAL.encode()) - len("# \n")
    at_limit = MINIMAL + "# " + "x" * padding + "\n"
    assert len(at_limit.encode()) == MAX_CATALOG_BYTES

    # WHEN it and the same with one more byte are loaded
    catalog = parse_catalog(at_limit)
    message = refusal(at_limit + " ")

    # THEN the first loads, the second is refused without being parsed
    assert list(catalog.customers) == ["org-42"]
    assert (
        message == "<catalog>: the catalog is larger than 1,048,576 bytes (1 MiB), the most a catalog may be"
    )


def test_the_size_limit_counts_bytes_of_utf8_not_characters(parser: str) -> None:
    # GIVEN a catalog under the limit in characters but over it in bytes (é takes two)
    text = MINIMAL + "# " + "é" * (MAX_CATALOG_BYTES // 2) + "\n"
    assert len(text) < MAX_CATALOG_BYTES < len(text.encode())

    # WHEN / THEN
    assert "larger than 1,048,576 bytes" in refusal(text)


def test_a_catalog_file_far_over_the_limit_is_refused_from_its_first_mebibyte(tmp_path: Path) -> None:
    # GIVEN a 100 MB file (sparse: zeros that take no disk)
    path = tmp_path / "huge.yaml"
    with path.open("wb") as file:
        file.truncate(100_000_000)

    # WHEN it is loaded / THEN it is refused for its size, not for what its bytes are
    with pytest.raises(CatalogError) as raised:
        load_catalog(path)
    assert (
        str(raised.value)
        == f"{path}: the catalog is larger than 1,048,576 bytes (1 MiB), the most a catalog may be"
    )


def test_a_lone_surrogate_in_the_text_is_refused_with_its_line(parser: str) -> None:
    # GIVEN text (not bytes: a caller's string) holding half of a UTF-16 pair on line 3
    text = "meters:\n  - key: a\n    event_type: \ud800\n"

    # WHEN / THEN
    assert refusal(text) == "<catalog>:3: U+D800 is a lone surrogate, not Unicode text"


@pytest.mark.parametrize(
    "where",
    [
        "a tenant",
        "a meter key",
        "an unknown field's name",
        "a currency",
        "a tag",
        "an anchor",
        "a tag handle",
    ],
)
def test_a_huge_piece_of_input_is_quoted_in_a_short_message(where: str, parser: str) -> None:
    # GIVEN a catalog with 200,000 characters where a short word belongs
    huge = "x" * 200_000
    text = {
        "a tenant": MINIMAL.replace("tenant: org-42", f"tenant: {huge}"),
        "a meter key": MINIMAL.replace("key: ingress_gb", f"key: {huge}"),
        "an unknown field's name": MINIMAL.replace("currency: USD", f"{huge}: USD"),
        "a currency": MINIMAL.replace("currency: USD", f"currency: {huge}"),
        "a tag": MINIMAL.replace("currency: USD", f"currency: !{huge} USD"),
        "an anchor": MINIMAL.replace("currency: USD", f"currency: &{huge} USD"),
        "a tag handle": MINIMAL.replace("currency: USD", f"currency: !{huge}!t USD"),
    }[where]

    # WHEN it is loaded / THEN the message is one line of a few hundred characters at most
    message = refusal(text)
    assert_one_short_line(message)
    assert len(message) < 300, message


def test_every_bad_catalog_of_the_corpus_reads_the_same_on_pyyaml_s_own_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the corpus of bad catalogs, each with the message libyaml's parser makes
    corpus = sorted((Path(__file__).parent.parent / "catalogs" / "bad").glob("*.yaml"))
    with_libyaml = {}
    for path in corpus:
        with pytest.raises(CatalogError) as raised:
            load_catalog(path)
        with_libyaml[path] = str(raised.value)

    # WHEN PyYAML reads them without libyaml
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    for path in corpus:
        with pytest.raises(CatalogError) as raised:
            load_catalog(path)

        # THEN each is refused with the same message, but for YAML's own wording of a syntax error
        ours, theirs = str(raised.value), with_libyaml[path]
        if "not valid YAML (" in theirs:
            ours, theirs = ours.split(" (")[0], theirs.split(" (")[0]
        assert ours == theirs


@pytest.mark.parametrize(
    "text", [MINIMAL, "#" * (MAX_CATALOG_BYTES + 1), "meters: [", "a: \ud800", "a: &x 1"], ids=str.__len__
)
def test_loading_leaves_the_cyclic_garbage_collector_as_it_found_it(text: str) -> None:
    # GIVEN the collector on, as it always is / WHEN a catalog loads or is refused, at any stage
    assert gc.isenabled()
    with contextlib.suppress(CatalogError):
        parse_catalog(text)

    # THEN it is on again (loading pauses it while the document is built)
    assert gc.isenabled()


# --- tenants ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tenant",
    ["org-42", "org 42", "Ünïcødé GmbH", "株式会社ストリーム", "o'brien & sons", "a|b%c/d#e?f\\g", "%" * 102],
)
def test_a_tenant_name_of_printable_nfc_text_within_the_limit_is_accepted(tenant: str) -> None:
    # GIVEN a customer of that name, written as a YAML double-quoted string
    text = MINIMAL.replace("org-42", json.dumps(tenant, ensure_ascii=False))

    # WHEN / THEN it loads, named exactly so
    assert key_name_problem(tenant) is None
    assert list(parse_catalog(text).customers) == [tenant]


@given(st.text(min_size=1, max_size=60))
@FUZZ
def test_a_tenant_name_is_accepted_exactly_when_it_is_trimmed_printable_nfc_and_short(name: str) -> None:
    from unicodedata import normalize

    accepted = key_name_problem(name) is None
    assert accepted == (
        name == name.strip()
        and name.isprintable()
        and normalize("NFC", name) == name
        and len(name.encode("utf-8")) <= MAX_TENANT_BYTES
    )


# --- fuzzing ----------------------------------------------------------------------------------------

FIELD_NAMES = [
    *["meters", "plans", "customers", "key", "tenant", "plan", "charges", "tiers", "up_to", "model"],
    *["unit_price", "event_type", "aggregation", "value", "version", "effective_from", "currency"],
    *["group_by", "divide_by", "amount", "credits", "spend_alerts", "flat_fee", "package_size"],
    *["package_price", "discount_percent", "minimum_commit"],
]
YAML_PIECES = [
    *FIELD_NAMES,
    *["null", "per_unit", "graduated", "sum", "USD", "2026-01-01", "0.1", "1e999", "-0", "0x1A"],
    *["1:30", ".inf", "yes", "~", "ingress_gb", "org-42"],
    *[": ", ":", "- ", "-", "? ", "\n", "\n  ", "\n    ", "\t", " ", ",", "[", "]", "{", "}", "#", "|", ">"],
    *["&a ", "*a", "<<: ", "!!str ", "!!set ", "!x ", "!", "'", '"', "\\", "%YAML 1.1\n", "---\n", "...\n"],
    *["\ufeff", "\x00", "\x85", "\u2028", "\ud800", "é", "\u00a0"],
]


@st.composite
def yaml_soup(draw: st.DrawFn) -> str:
    """Text made of YAML's syntax and the catalog's words, in any order."""
    return "".join(draw(st.lists(st.sampled_from(YAML_PIECES), max_size=80)))


@st.composite
def mutated_catalog(draw: st.DrawFn) -> str:
    """A valid catalog with a few cuts, insertions and swaps: almost right, as mistakes are."""
    text = MINIMAL
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "repeat"]))
        if kind == "insert":
            text = text[:at] + draw(st.sampled_from(YAML_PIECES) | st.text(max_size=3)) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        else:
            text = text[:at] + text[at : at + draw(st.integers(1, 40))] * 2 + text[at + 40 :]
    return text


@st.composite
def repeating_catalog(draw: st.DrawFn) -> str:
    """Catalog-shaped YAML whose parts repeat earlier ones through anchors, aliases and merge keys,
    nested: what an alias bomb is made of, at every size up to billions of nodes once expanded."""
    fan = draw(st.integers(1, 10))
    lines = ["p0: &p0 {key: ingress_gb, event_type: kafka.ingress, aggregation: sum, value: bytes}"]
    for level in range(1, draw(st.integers(1, 9)) + 1):
        refs = ", ".join([f"*p{level - 1}"] * fan)
        shape = draw(st.sampled_from(["[{}]", "{{<<: [{}]}}", "{{key: x, list: [{}]}}"]))
        lines.append(f"p{level}: &p{level} " + shape.format(refs))
    last = f"*p{len(lines) - 1}"
    use = draw(
        st.sampled_from(
            [f"meters: [{last}]", f"meters: {last}", f"? {last}\n: x", f"meters: [{{{last}: x}}]"]
        )
    )
    return "\n".join([*lines, use, ""])


FIELDS = st.sampled_from(FIELD_NAMES)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=12)
    | st.dates()
    | st.sampled_from(
        [
            "sum",
            "count",
            "per_unit",
            "graduated",
            "volume",
            "package",
            "flat",
            "USD",
            "JPY",
            "0.1",
            "1e400",
            "NaN",
            "-1",
            "ingress_gb",
            "standard",
            "org-42",
            "2026-13-01",
        ]
    )
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(FIELDS, children, max_size=6),
    max_leaves=30,
)


RICH = yaml.safe_load(
    textwrap.dedent(
        """\
        meters:
          - {key: ingress_gb, event_type: kafka.ingress, aggregation: sum, value: bytes,
             divide_by: "1073741824", group_by: [cluster, region]}
          - {key: calls, event_type: api.call, aggregation: count}
          - {key: users, event_type: api.call, aggregation: unique_count, value: user.id}
          - {key: disk, event_type: disk, aggregation: time_weighted, value: gb}
        plans:
          - key: standard
            version: 1
            effective_from: "2026-01-01"
            currency: USD
            discount_percent: "10"
            minimum_commit: "500.00"
            charges:
              - meter: ingress_gb
                model: graduated
                tiers: [{up_to: "1000", unit_price: "0.05"}, {up_to: null, unit_price: "0.03", flat_fee: "1"}]
              - {meter: calls, model: package, package_size: "1000", package_price: "0.10"}
              - meter: users
                model: volume
                tiers: [{up_to: "10", unit_price: "1"}, {up_to: null, unit_price: "0.5"}]
              - {meter: disk, model: per_unit, unit_price: "0.0001"}
              - {key: support, model: flat, amount: "99.00"}
          - {key: standard, version: 2, effective_from: "2026-10-01", currency: USD,
             charges: [{meter: calls, model: per_unit, unit_price: "0.001"}]}
          - {key: yen, effective_from: "2026-01-01", currency: JPY,
             charges: [{meter: calls, model: per_unit, unit_price: "1"}]}
        customers:
          - tenant: org-42
            plan: standard
            credits: "100.00"
            spend_alerts: ["50", "500"]
            charges: [{meter: disk, model: per_unit, unit_price: "0.0002"}]
          - {tenant: org-43, plan: yen}
        """
    )
)


def places(node: object) -> Iterator[tuple[dict[str, object] | list[object], object]]:
    """Every (container, key or index) of a document, depth first."""
    if isinstance(node, dict):
        for key, child in node.items():
            yield node, key
            yield from places(child)
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield node, index
            yield from places(child)


@st.composite
def perturbed_catalog(draw: st.DrawFn) -> str:
    """A valid catalog with one to three fields replaced by anything, removed, or one added."""
    document = copy.deepcopy(RICH)
    for _ in range(draw(st.integers(1, 3))):
        container, key = draw(st.sampled_from(list(places(document))))
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            container[key] = draw(DOCUMENTS)  # type: ignore[index]
        elif action == "remove":
            del container[key]  # type: ignore[arg-type]
        elif isinstance(container, dict):
            container[draw(FIELDS)] = draw(DOCUMENTS)
        else:
            container.append(draw(DOCUMENTS))
    return yaml.safe_dump(document)


def assert_loads_or_refuses_in_one_short_line(text: str) -> None:
    try:
        parse_catalog(text)
    except CatalogError as error:
        assert_one_short_line(str(error))


@given(st.text(max_size=400))
@FUZZ
def test_any_text_loads_or_is_refused_with_a_catalog_error(text: str) -> None:
    assert_loads_or_refuses_in_one_short_line(text)


@given(st.binary(max_size=400))
@FUZZ
def test_any_bytes_decoded_load_or_are_refused_with_a_catalog_error(data: bytes) -> None:
    # undecodable bytes as lone surrogates, as os.fsdecode or a careless caller would pass them
    assert_loads_or_refuses_in_one_short_line(data.decode("utf-8", "surrogateescape"))
    assert_loads_or_refuses_in_one_short_line(data.decode("latin-1"))


@given(st.binary(max_size=400))
@FUZZ
def test_any_file_loads_or_is_refused_with_a_catalog_error(data: bytes) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".yaml") as file:
        file.write(data)
        file.flush()
        try:
            load_catalog(file.name)
        except CatalogError as error:
            assert_one_short_line(str(error))


@given(yaml_soup())
@FUZZ
def test_any_arrangement_of_yaml_syntax_loads_or_is_refused_with_a_catalog_error(text: str) -> None:
    assert_loads_or_refuses_in_one_short_line(text)


@given(mutated_catalog())
@FUZZ
def test_a_catalog_with_random_cuts_and_insertions_loads_or_is_refused_with_a_catalog_error(
    text: str,
) -> None:
    assert_loads_or_refuses_in_one_short_line(text)


@given(st.dictionaries(st.sampled_from(["meters", "plans", "customers"]), DOCUMENTS, min_size=1))
@FUZZ
def test_any_shape_of_catalog_document_loads_or_is_refused_with_a_catalog_error(document: object) -> None:
    assert_loads_or_refuses_in_one_short_line(yaml.safe_dump(document))


@given(perturbed_catalog())
@FUZZ
def test_a_catalog_with_any_field_replaced_removed_or_added_loads_or_is_refused_with_a_catalog_error(
    text: str,
) -> None:
    assert_loads_or_refuses_in_one_short_line(text)


@given(repeating_catalog())
@FUZZ
def test_a_catalog_that_repeats_itself_through_aliases_is_refused_quickly_in_one_short_line(
    text: str,
) -> None:
    assert_loads_or_refuses_in_one_short_line(text)


def test_an_unknown_key_spanning_lines_is_named_quoted_on_one_line() -> None:
    # GIVEN a catalog whose top-level key is a YAML complex key holding a line break
    text = "? meters\n\n  meters\n: []\n"
    # WHEN it is loaded
    with pytest.raises(CatalogError) as refused:
        parse_catalog(text, "<catalog>")
    # THEN the refusal is one line that names the key quoted, its line break escaped
    assert_one_short_line(str(refused.value))
    assert "catalog.'meters\\nmeters': unknown field" in str(refused.value)
