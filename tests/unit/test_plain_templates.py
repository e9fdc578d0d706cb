"""Plain policy templates are rendered without Jinja2, and exactly as Jinja2 renders them.

A plain template is text and ``{{ name }}`` / ``{{ name | default(x) }}`` expressions;
the renderer in ccci.policy.template takes those and hands anything else to the Jinja2
sandbox. The differential test renders generated templates both ways: wherever the plain
renderer answers, the sandbox gives the same value of the same type.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2.defaults
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccci.config.yamlsrc import Document
from ccci.errors import InputError
from ccci.policy import jinja_sandbox, template

REPO = Path(__file__).resolve().parents[2]

VARIABLES: dict[str, Any] = {
    "docker_data_root": "/var/lib/docker",
    "abra_dir": "/root/.abra",
    "count": 3,
    "flag": True,
    "nothing": None,
    "items": ["a", 1],
    "big": 10**6,
    "empty": "",
    "braces": "{{ not rendered }}",
}


def by_sandbox(text: str, variables: dict[str, Any]) -> tuple[str, Any]:
    """("ok", value) or ("error", message), as the Jinja2 sandbox renders ``text``."""
    doc = Document("p.yaml", 0, 1, {"v": text}, {("v",): 1})
    try:
        return "ok", jinja_sandbox.render_data(doc, variables, "h")["v"]
    except InputError as exc:
        return "error", exc.message


def by_plain(text: str, variables: dict[str, Any]) -> tuple[str, Any] | None:
    """("ok", value) from the plain renderer, None when it leaves ``text`` to Jinja2."""
    try:
        return "ok", template._plain(text, variables)
    except template._NotPlain:
        return None


def same(plain: tuple[str, Any], sandbox: tuple[str, Any]) -> bool:
    return plain == sandbox and type(plain[1]) is type(sandbox[1])


NAMES = st.sampled_from([*VARIABLES, "undefined", "range", "dict", "true", "none", "x1"])
LITERALS = st.sampled_from(["''", "'/srv'", '"/usr/local/bin/ccci"', "'a\"b'", '"it\'s"'])
SPACES = st.sampled_from(["", " ", "  "])


@st.composite
def expressions(draw: st.DrawFn) -> str:
    name = draw(NAMES)
    inner = f"{draw(SPACES)}{name}{draw(SPACES)}"
    if draw(st.booleans()):
        default = draw(st.one_of(NAMES, LITERALS))
        inner = f"{draw(SPACES)}{name} | default({default}){draw(SPACES)}"
    return f"{{{{{inner}}}}}"


TEXTS = st.text(alphabet="ab/._-{}%# \n\t", max_size=6)


@st.composite
def templates(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(st.one_of(expressions(), TEXTS), min_size=1, max_size=4))
    return "".join(pieces)


@given(templates())
def test_a_plain_template_renders_as_the_jinja2_sandbox_renders_it(text: str) -> None:
    plain = by_plain(text, VARIABLES)
    if plain is not None:
        assert same(plain, by_sandbox(text, VARIABLES)), text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ docker_data_root }}", "/var/lib/docker"),
        (
            "{{ abra_dir }}/servers/{server}/{domain}.env",
            "/root/.abra/servers/{server}/{domain}.env",
        ),
        ("{{ disk_gate_path | default(docker_data_root) }}", "/var/lib/docker"),
        (
            "{{ ccci_bin | default('/usr/local/bin/ccci') }} reconcile",
            "/usr/local/bin/ccci reconcile",
        ),
        ("{{ count }}", 3),
        ("{{ flag }}", True),
        ("{{ nothing | default('x') }}", None),
        ("n={{ count }}", "n=3"),
        ("{{ braces }}", "{{ not rendered }}"),
    ],
)
def test_the_shipped_policies_kinds_of_template_are_plain(text: str, expected: Any) -> None:
    plain = by_plain(text, VARIABLES)
    assert plain is not None
    assert same(plain, ("ok", expected))
    assert same(plain, by_sandbox(text, VARIABLES))


@pytest.mark.parametrize(
    "text",
    [
        "{{ undefined }}",  # the sandbox's error names it
        "{{ undefined | default(also_undefined) }}",
        "{{ count | default(big) }}",  # the sandbox refuses the argument
        "{{ range }}",
        "{{ true }}",
        "{{ count + 1 }}",
        "{{ docker_data_root | upper }}",
        "{{- count }}",
        "{{{ count }}",
        "{{ count }}}",
        "{{ count }}\n",  # Jinja2 drops a trailing newline
        "{% if flag %}x{% endif %}",
        "{# note #}{{ count }}",
        "{{ count | default('a\\'b') }}",
    ],
)
def test_anything_else_is_left_to_the_sandbox(text: str) -> None:
    assert by_plain(text, VARIABLES) is None


def test_every_jinja2_global_is_left_to_the_sandbox() -> None:
    """A name no variable has is a global when Jinja2 has one by that name, not undefined:
    the plain renderer must not read it as undefined (and take the default)."""
    assert set(jinja2.defaults.DEFAULT_NAMESPACE) <= template.JINJA_NAMES


def test_a_document_with_one_other_template_goes_whole_to_the_sandbox() -> None:
    doc = Document(
        "p.yaml",
        0,
        1,
        {"a": "{{ count }}", "b": "{{ count * 2 }}", "db_password": "{{ db_password }}"},
        {("a",): 1, ("b",): 2, ("db_password",): 3},
    )
    rendered = template.render(doc, {**VARIABLES, "db_password": "s3cret"}, "h")
    assert rendered.data == {"a": 3, "b": 6, "db_password": "s3cret"}
    assert rendered.sensitive == frozenset({("db_password",)})


def test_an_undefined_name_is_the_sandboxs_error_naming_the_line() -> None:
    doc = Document("p.yaml", 0, 1, {"a": "{{ nope }}"}, {("a",): 4})
    with pytest.raises(InputError) as caught:
        template.render(doc, VARIABLES, "h")
    assert "p.yaml:4" in str(caught.value)
    assert "'nope' is undefined" in str(caught.value)


def test_loading_the_shipped_policies_never_imports_jinja2() -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ccci.config import inventory\n"
        "from ccci.policy.load import load_for_hosts\n"
        "inv = inventory.load(Path('inventory.yaml'))\n"
        "loaded = load_for_hosts([Path('policies')], inv, inv.limit(None))\n"
        "assert loaded and all(t.policies for t in loaded), loaded\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'jinja2'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
