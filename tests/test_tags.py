"""Fence tags per SPEC §2: what is run, with which options; bad options are errors, never ignored."""

from notevault.tags import Tag, parse_info, sessions_named


def test_untagged_and_other_languages_are_not_run():
    assert parse_info("python") == ("python", None)
    assert parse_info("python {run}") == ("python", None)
    assert parse_info("bash run") == ("bash", None)
    assert parse_info("") == ("", None)


def test_all_options():
    language, tag = parse_info("python run id=bn-demo device=cuda timeout=60 seed=1 output=show session=s1")
    assert language == "python"
    assert tag == Tag(kind="run", id="bn-demo", device="cuda", timeout=60.0, seed=1, output="show", session="s1")


def test_check_with_formula_and_tolerances():
    _, tag = parse_info("python check formula=Other#^bn-norm rtol=1e-3 atol=0 isolated")
    assert (tag.kind, tag.formula, tag.rtol, tag.atol, tag.isolated) == ("check", "Other#^bn-norm", 1e-3, 0.0, True)
    assert tag.errors == ()


def test_bad_options_are_listed():
    _, tag = parse_info("python run devcie=cuda timeout=-1 seed=x output=loud formula=f isolated session=a")
    assert tag.errors == (
        "unknown option 'devcie'",
        "option timeout=-1 must be a positive number",
        "option seed=x must be an integer",
        "option output=loud must be one of show|fold|hide",
        "option 'formula' belongs on a 'check' block",
        "'isolated' and 'session=' exclude each other",
    )


def test_expect_forms():
    assert parse_info("python run expect=error")[1].expect == "error"
    assert parse_info("python run expect=ZeroDivisionError")[1].expect == "ZeroDivisionError"
    assert parse_info("python run expect=")[1].errors == ("option 'expect' needs a value",)


def test_sessions_named_reads_a_tag_as_the_parser_does():
    """The index and planner find a note's sessions from its text; any spelling the parser accepts counts."""
    text = (b'```python run session="a"\nx\n```\n'
            b"> - ~~~py check sess''ion=b\n"
            b"    ````python run   session='c' seed=1\n"
            b"```python session=not-tagged\n```python run session=bad!\n```text run session=d\n")
    assert sessions_named(text) == {"a", "b", "c"}
    assert sessions_named(b"# no fences, session=x in prose\n") == set()


def test_a_misspelt_tag_is_an_error_not_a_block_silently_never_run():
    for info, kind in (("python Run", "run"), ("python runn id=a", "run"), ("py chek", "check"),
                       ("python CHECK formula=f", "check")):
        _, tag = parse_info(info)
        word = info.split()[1]
        assert (tag.kind, tag.errors) == (kind, (f"'{word}' is not a tag: write '{kind}'",)), info
    for info in ("python example", "python ran", "python test", "python cheque"):
        assert parse_info(info) == ("python", None), info  # other words after python stay plain code
