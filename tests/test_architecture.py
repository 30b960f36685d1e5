"""The architecture holds: layers import downward only, the rules name no method, code versions
follow the import closure, the DAG-building imports stay free of torch, one body for wct/photowct."""

import re
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from photostyle.core.provenance import PACKAGE_DIR, UnknownModule, code_version, import_closure, package_imports
from photostyle.methods import REGISTRY
from photostyle.methods.base import Method

LAYERS = {"core": 0, "ops": 1, "nets": 2, "methods": 3, "stages": 4}  # package-root modules (cli, config): 5


def _modules() -> list[str]:
    out = []
    for p in PACKAGE_DIR.rglob("*.py"):
        rel = p.relative_to(PACKAGE_DIR).with_suffix("")
        parts = [x for x in rel.parts if x != "__init__"]
        out.append(".".join(["photostyle", *parts]))
    return sorted(out)


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return -1  # the package itself (__version__)
    return LAYERS.get(parts[1], 5)


def test_every_import_points_down_or_sideways():
    bad = [(m, dep) for m in _modules() for dep in package_imports(m)
           if _layer(dep) > _layer(m) and not m.endswith("__init__")]
    assert not bad, bad


def test_there_are_no_import_cycles():
    graph = {m: set(package_imports(m)) for m in _modules()}
    state: dict[str, int] = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError(f"import cycle: {' -> '.join(path + [m])}")
        if state.get(m) == 2:
            return
        state[m] = 1
        for dep in graph.get(m, ()):
            if dep.count(".") > 0 and dep != "photostyle":
                visit(dep, path + [m])
        state[m] = 2

    for m in graph:
        visit(m, [])


def test_rules_and_snakefile_name_no_method():
    files = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    for f in files:
        text = f.read_text()
        for name in REGISTRY:
            assert not re.search(rf"[\"']{name}[\"']", text), f"{f.name} names the method {name!r}"


def test_every_callable_a_rule_names_states_its_signature_once():
    """Snakemake inspects every callable input, param and resource of every job; the workflow's
    callables state their signature once (common.smk's job_function), which a 100k-photo DAG
    build relies on. A plain function or lambda in a rule would silently cost that again."""
    rules = REPO / "workflow" / "rules"
    common = (rules / "common.smk").read_text()
    wildcard_functions = set(re.findall(r"^def (\w+)\(wildcards", common, re.M))
    marked = set(re.findall(r"^@job_function\ndef (\w+)", common, re.M))
    assert marked and wildcard_functions
    used = set()
    for f in [REPO / "Snakefile", *sorted(rules.glob("*.smk"))]:
        text = f.read_text()
        for line in text.splitlines() if f.name != "common.smk" else ():  # its lambdas are helpers, not rule callables
            if "lambda" in line and not line.lstrip().startswith("#"):
                assert "job_function(lambda" in line, f"{f.name}: {line.strip()}"
        used |= set(re.findall(r"^\s+(?:\w+=)?(?:unpack\()?(\w+)\)?,\s*(?:#.*)?$", text, re.M))
    named = used & wildcard_functions
    assert named, "no input function found in the rules"
    assert named <= marked, sorted(named - marked)


_DRY_RUN_PROBE = """
import gc, inspect, sys
calls = [0]
signature = inspect.signature
def counted(*a, **k):
    calls[0] += 1
    return signature(*a, **k)
inspect.signature = counted
from snakemake.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print("PROBE", calls[0], gc.get_threshold()[0])
"""


def _probe_dry_run(tmp_path, photos: int) -> tuple[int, int, int]:
    """Jobs, inspect.signature calls and the GC's first threshold of a dry run over ``photos``
    empty files (a dry run never opens one), shard_size 3, two styles, two methods."""
    from conftest import scheduled_jobs

    root = tmp_path / f"n{photos}"
    for i in range(photos):
        (root / "photos" / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (root / "photos" / f"d{i % 4}" / f"IMG_{i:04d}.jpg").touch()
    (root / "styles").mkdir()
    for s in ("a", "b"):
        (root / "styles" / f"{s}.jpg").touch()
    cfg = root / "config.yaml"
    cfg.write_text(yaml.safe_dump({"content_dir": str(root / "photos"), "style_dir": str(root / "styles"),
                                   "ingest": {"shard_size": 3}, "stylize": {"methods": ["reinhard", "mkl"]}}))
    out = subprocess.run([sys.executable, "-c", _DRY_RUN_PROBE, "-n", "--cores", "1", "--snakefile",
                          str(REPO / "Snakefile"), "--directory", str(root), "--configfile", str(cfg)],
                         capture_output=True, text=True, check=True).stdout
    calls, threshold = map(int, out.rsplit("PROBE", 1)[1].split())
    return len(scheduled_jobs(out)), calls, threshold


def test_a_dry_run_does_not_introspect_callables_per_job_or_walk_the_dag_at_default_gc_pace(tmp_path):
    """The per-job costs a 100k-photo DAG build shed (issue 18, item 7; docs/benchmarks.md) stay
    shed: Snakemake calls inspect.signature on a callable of every job unless it is told the
    signature once (our job_function; Resource.evaluate), and the Snakefile keeps the cyclic GC
    at a 50,000-allocation pace while the DAG is built."""
    small, large = _probe_dry_run(tmp_path, 40), _probe_dry_run(tmp_path, 120)
    assert large[0] - small[0] > 100, (small, large)  # about 7 per-shard jobs per 3 photos
    per_job = (large[1] - small[1]) / (large[0] - small[0])
    # one per job is left: Snakemake's own default tmpdir resource (4.9 per job before)
    assert per_job <= 1.2, (small, large)
    assert small[2] >= 50_000 and large[2] >= 50_000


def _package_copy(tmp_path):
    dst = tmp_path / "photostyle"
    shutil.copytree(PACKAGE_DIR, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def test_code_version_follows_the_import_closure(tmp_path):
    pkg = _package_copy(tmp_path)

    def versions():
        from photostyle.core import provenance as P

        P.code_hash.cache_clear()
        P.package_imports.cache_clear()
        return {name: code_version(*roots, package_dir=pkg) for name, roots in {
            "refine": ("stages.refine",), "metrics": ("stages.metrics",),
            "reinhard": ("stages.stylize", REGISTRY["reinhard"].module()),
            "fast": ("stages.stylize", REGISTRY["fast"].module())}.items()}

    before = versions()
    # refine imports the smoothing step (inside a function): a change there reruns refine only
    (pkg / "ops" / "smoothing.py").write_text((pkg / "ops" / "smoothing.py").read_text() + "\n# edit\n")
    after = versions()
    assert after["refine"] != before["refine"]
    assert after["metrics"] == before["metrics"] and after["reinhard"] == before["reinhard"]
    # the domain transform also feathers the region weights (ops.regions): stylize follows it too
    (pkg / "ops" / "domain_transform.py").write_text((pkg / "ops" / "domain_transform.py").read_text() + "\n# edit\n")
    dt = versions()
    assert dt["refine"] != after["refine"] and dt["reinhard"] != after["reinhard"]
    after = dt
    # the fast network's module: stylize with fast changes, with reinhard it does not, refine does not
    (pkg / "nets" / "fastnet.py").write_text((pkg / "nets" / "fastnet.py").read_text() + "\n# edit\n")
    again = versions()
    assert again["fast"] != after["fast"] and again["reinhard"] == after["reinhard"]
    assert again["refine"] == after["refine"]
    # a module two imports away still counts: stylize -> ops.regions -> core.photo
    assert "photostyle.core.photo" in import_closure("stages.stylize", package_dir=pkg)


def test_the_import_scan_finds_every_import_statement_ast_walk_finds(tmp_path):
    """package_imports visits statements only (it runs at every DAG build); it must see exactly
    the imports a full ast.walk sees: in functions, classes, try/except, with, if, match."""
    import ast

    from photostyle.core.provenance import _import_statements

    probe = tmp_path / "probe.py"
    probe.write_text("import a\nclass C:\n    def f(self):\n        try:\n            import b\n"
                     "        except ImportError:\n            from c import d\n        finally:\n            import e\n"
                     "with x:\n    for i in y:\n        import f\n    else:\n        import g\n"
                     "match v:\n    case 1:\n        import h\n"
                     "async def k():\n    async with z:\n        while 1:\n            import i\n")
    sources = [probe, *PACKAGE_DIR.rglob("*.py")]
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        walked = sorted(ast.dump(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))
        scanned = sorted(ast.dump(n) for n in _import_statements(tree.body))
        assert scanned == walked, path
    assert len(list(_import_statements(ast.parse(probe.read_text()).body))) == 8  # a b c e f g h i


def test_a_missing_module_is_an_error_not_a_silent_hash(tmp_path):
    pkg = _package_copy(tmp_path)
    (pkg / "ops" / "smoothing.py").unlink()
    from photostyle.core import provenance as P

    P.package_imports.cache_clear()
    with pytest.raises(UnknownModule, match="smoothing"):
        import_closure("stages.refine", package_dir=pkg)
    P.package_imports.cache_clear()


def test_building_the_dag_imports_no_heavy_library():
    code = ("import sys; import photostyle.config, photostyle.methods; "
            "from photostyle.stages import ingest, segment, train, stylize, refine, metrics, report; "
            "from photostyle.config import validate_config; c = validate_config({}); "
            "[stylize.settings(c, m) for m in photostyle.methods.REGISTRY]; "
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'skimage', 'numba', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_wct_and_photowct_share_one_body():
    wct, photowct = REGISTRY["wct"], REGISTRY["photowct"]
    assert photowct.__call__ is wct.__call__ and "__call__" not in vars(photowct)
    assert photowct.family != wct.family  # they differ in their declarations only


def test_every_method_declares_its_contract():
    for name, cls in REGISTRY.items():
        assert cls.name == name and cls.description and cls.citation, name
        assert callable(cls.__call__) and cls.__call__ is not REGISTRY[name].__mro__[-2].__call__, name
        params = cls.parse({})
        for art in cls.artifacts(params, ["style_a-000000000000"]):
            from photostyle.stages.train import TRAINERS

            assert art.trainer in TRAINERS and (art.style is not None) == TRAINERS[art.trainer].per_style


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_job_instance_records_what_it_runs_on(name, tmp_path):
    from conftest import method_for_job

    style = "style_a-000000000000"
    m = method_for_job(name, train_root=tmp_path, styles=[style])
    declared = set(m.weights_for(m.params))
    if type(m).resolve_weights.__func__ is Method.resolve_weights.__func__:
        assert set(m.resolved) == declared
    else:  # a network with candidate files (vgg16: the Oxford file, else torchvision's) resolves one of them
        assert set(m.resolved) <= declared and bool(m.resolved) == bool(declared)
    assert all(r.is_random and r.provenance == "random, seed 0" for r in m.resolved.values())
    assert {a.path(tmp_path) for a in m.artifact_paths} == set(m.artifact_paths.values())
    if not m.artifact_paths:  # methods without trained models: the provenance is the weights alone
        expected = "; ".join(f"{n}=random, seed 0" for n in m.resolved) or "none"
        assert m.provenance(style) == expected


def test_the_documented_way_to_add_a_method_works(tmp_path):
    """docs/architecture.md's worked example, as written there, in a copy of the package."""
    doc = (REPO / "docs" / "architecture.md").read_text()
    example = doc.split("`workflow/photostyle/methods/gamma.py`:\n\n```python\n")[1].split("```")[0]
    pkg = _package_copy(tmp_path)
    (pkg / "methods" / "gamma.py").write_text(example)
    shutil.copytree(REPO / "workflow" / "schemas", tmp_path / "schemas")  # beside the package, as in the repo
    code = ("import torch; from photostyle.methods import REGISTRY; from photostyle.config import validate_config; "
            "c = validate_config({'stylize': {'methods': ['gamma']}, 'methods': {'gamma': {'strength': 0.5}}}); "
            "m = REGISTRY['gamma'](REGISTRY['gamma'].parse(c['methods']['gamma']), torch.device('cpu')); "
            "x = torch.rand(1, 3, 8, 8) * 0.5; s = torch.rand(1, 3, 4, 4) * 0.2 + 0.7; "
            "y = m(x, m.prepare_style(s, 's')); print(y.shape == x.shape, float(y.mean()) > float(x.mean()))")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]


def test_snakemake_lint_reports_nothing():
    out = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "Congratulations, your workflow is in a good condition" in out.stdout + out.stderr, \
        (out.stdout + out.stderr)[-3000:]


def test_every_rule_that_runs_code_names_the_conda_env_and_it_lists_our_dependencies():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    import yaml

    for f in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        rules = re.split(r"\nrule ", "\n" + f.read_text())[1:]
        for body in rules:
            if "shell:" in body:
                assert "conda:\n        CONDA_ENV" in body, f"{f.name}: rule {body.split(':')[0]} has no conda env"
    env = yaml.safe_load((REPO / "envs" / "photostyle.yaml").read_text())
    listed = {re.split(r"[<>=\[ ]", d if isinstance(d, str) else "", 1)[0].lower() for d in env["dependencies"]}
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed |= {re.split(r"[<>=\[ ]", d, 1)[0].lower() for d in pip}
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    missing = {re.split(r"[<>=\[ ]", d, 1)[0].lower() for d in deps} - listed
    assert not missing, missing
    assert "-e .." in pip  # the package itself, from the repository the env file sits in
