"""One RunConfig shared by both sides; its defaults reproduce the user's reference script."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.specs import LOSSES, OPTIMIZERS
from harness.stage_names import STAGE_NAMES
from harness.transport.process import PORT_TIMEOUT_S

BUNDLED_DATA = Path(__file__).resolve().parent.parent / "data" / "demo_training_data.csv"
REAL_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "demo_training_data.csv"


@dataclass(frozen=True)
class RunConfig:
    data: Path = BUNDLED_DATA
    label: str = "label"
    test_size: float = 0.2
    split_seed: int = 42
    batch_size: int = 32
    epochs: int = 20
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    threshold: float = 0.5
    seed: int = 0
    backend: str = "flex"
    fault: str = ""
    # End-to-end independent runs compared statistically in the metrics stage.
    seeds: int = 1
    # Per-stage tolerance overrides: {"forward": {"rtol": 1e-5, "atol": 1e-6}, ...}.
    tolerances: dict[str, dict[str, float]] = field(default_factory=dict)
    # A port running as its own process (docs/protocol.md) instead of the in-process extension;
    # it decides its own backend and faults.
    port_cmd: str | None = None
    port_timeout: float = PORT_TIMEOUT_S
    # The reference model (harness/reference/reference.py): "module:function" building the nn.Module as
    # function(n_features, n_outputs); "" is the user's classifier. A module is looked up as a file
    # next to the config file first (reference_dir), then on the import path.
    reference: str = ""
    reference_dir: Path | None = None
    task: str = "binary"
    loss: str = "BCELoss"
    # The loss's constructor options set in [model.loss] (harness/specs.py); the others take torch's default.
    loss_options: dict[str, float] = field(default_factory=dict)
    optimizer: str = "Adam"
    momentum: float = 0.0
    nesterov: bool = False
    # Each sample's shape as the model takes it, from the row's features in file order (C order): (1, 8, 8)
    # for 8x8 grey images, so the model's input is [n, 1, 8, 8]; () for a flat feature row, [n, d].
    # [data] sample_shape in harness.toml. The data stages see the table; the model stages the samples.
    sample_shape: tuple[int, ...] = ()
    # What the model's input holds: "float32" (features, pixels), or "int64" (token ids, as an
    # nn.Embedding takes them). [data] sample_dtype in harness.toml; int64 inputs reach the reference as
    # torch.long and the port as int64 (protocol 3), and must be whole numbers of at most 2^24 in
    # magnitude (SAMPLE_INT_LIMIT).
    sample_dtype: str = "float32"
    # Rows the StandardScaler is fitted on: "all" (the user's script: before the split), "train", or
    # "none" (no scaler).
    scaler: str = "all"
    # Stages the port must implement: a stage whose method it lacks is SKIP, or FAIL when named here
    # (--require, [port] require in harness.toml).
    require: tuple[str, ...] = ()
    # A port's own parameter and layer names mapped to the reference's: ordered (regex, replacement)
    # rules, [port.rename] in harness.toml (harness/rename.py).
    rename: tuple[tuple[str, str], ...] = ()
    # What the port's loss takes where the reference's is BCELoss on probabilities: "probabilities", or
    # "logits" for a port whose model returns logits and whose loss applies the sigmoid itself (Burn's
    # BinaryCrossEntropyLossConfig::with_logits(true)); [port] loss_input in harness.toml.
    loss_input: str = "probabilities"
    # Which layers the port's forward reports: "all" (every layer, by the reference's names) or "output"
    # (its model's output only, under the name of the reference's last compared layer: a port that
    # keeps its forward as written and adds no second pass to expose layers); [port] layers.
    layers: str = "all"
    # Keep the reference's results (harness/cache.py) under $HARNESS_CACHE or ./.harness-cache and reuse
    # them; the CLI's default, off for a RunConfig built in code.
    cache: bool = False

    def with_(self, **kw: Any) -> RunConfig:
        return replace(self, **kw)

    def loss_kwargs(self) -> dict[str, float]:
        """Every option of the configured loss, as its constructor takes them: the configured value or
        torch's default."""
        return {o.name: float(self.loss_options.get(o.name, o.default)) for o in LOSSES[self.loss].options}

    def reference_hyperparameters(self) -> dict[str, Any]:
        """What the reference uses, in the names the port's effective_config reports (the model's own
        layer hyperparameters are added by harness/reference/reference.py)."""
        out: dict[str, Any] = {"optimizer": self.optimizer, "lr": self.lr}
        if not OPTIMIZERS[self.optimizer].adaptive:
            out.update(momentum=self.momentum, nesterov=self.nesterov, weight_decay=self.weight_decay)
        else:
            out.update(beta1=self.beta1, beta2=self.beta2, eps=self.eps, weight_decay=self.weight_decay)
        out.update(clip_norm=None, batch_size=self.batch_size, epochs=self.epochs, loss=self.loss)
        out.update(self.loss_kwargs())
        if self.task == "binary":
            out["threshold"] = self.threshold
        out.update(
            test_size=self.test_size, split_seed=self.split_seed, loss_reduction="mean", scaler_fit_rows=self.scaler
        )
        return out


def load_tolerance_overrides(start: Path | None = None, file: Path | None = None) -> dict[str, dict[str, float]]:
    """Tolerances from ./harness.toml ([stage] tables) or [tool.harness.tolerances] in ./pyproject.toml;
    from `file`'s [tolerances] alone when a config file is given."""
    here = start or Path.cwd()
    candidates = [
        (here / "harness.toml", ("tolerances",)),
        (here / "pyproject.toml", ("tool", "harness", "tolerances")),
    ]
    if file is not None:
        candidates = [(file, ("tolerances",))]
    for path, keys in candidates:
        if not path.is_file():
            continue
        try:
            doc: Any = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise HarnessError(f"cannot parse {path}: {e}") from e
        for k in keys:
            doc = doc.get(k, {}) if isinstance(doc, dict) else {}
        if doc:
            out: dict[str, dict[str, float]] = {}
            for stage, tol in doc.items():
                if stage not in STAGE_NAMES:
                    raise HarnessError(
                        f"{path}: unknown stage '{stage}' in tolerances; stages are {', '.join(STAGE_NAMES)}"
                    )
                if not isinstance(tol, dict) or not set(tol) <= {"rtol", "atol"}:
                    raise HarnessError(f"{path}: tolerances.{stage} must be a table with rtol and/or atol")
                try:
                    out[stage] = {k: float(v) for k, v in tol.items()}
                except (TypeError, ValueError) as e:
                    raise HarnessError(f"{path}: tolerances.{stage} values must be numbers ({e})") from e
                from harness.tolerances import check_tolerance

                for k, v in out[stage].items():
                    check_tolerance(v, f"{path}: tolerances.{stage}.{k}")
            return out
    return {}


PORT_KEYS = ("cmd", "timeout_s", "require", "rename", "loss_input", "layers", "build", "watch")
LOSS_INPUTS = ("probabilities", "logits")
LAYERS = ("all", "output")


def _port_table(path: Path) -> dict[str, Any]:
    """The [port] table of a harness.toml ({} when the file or the table is absent), its keys checked."""
    if not path.is_file():
        return {}
    try:
        doc: Any = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise HarnessError(f"cannot read {path}: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise HarnessError(f"cannot parse {path}: {e}") from e
    port = doc.get("port", {})
    if not isinstance(port, dict):
        raise HarnessError(f"{path}: [port] must be a table with {', '.join(PORT_KEYS)}")
    unknown = sorted(set(port) - set(PORT_KEYS))
    if unknown:
        raise HarnessError(f"{path}: unknown key '{unknown[0]}' in [port]; keys are {', '.join(PORT_KEYS)}")
    return port


def required_stages(
    names: list[str] | tuple[str, ...] | str, where: str, known: list[str] | tuple[str, ...]
) -> tuple[str, ...]:
    """Stage names a port must implement, from a list or a comma list, each one of `known`."""
    items = [n.strip() if isinstance(n, str) else n for n in (names.split(",") if isinstance(names, str) else names)]
    if not all(isinstance(n, str) for n in items):
        raise HarnessError(f"{where}: require must list stage names")
    unknown = [n for n in items if n and n not in known]
    if unknown:
        raise HarnessError(f"{where}: unknown stage '{unknown[0]}' in require; stages are: {', '.join(known)}")
    return tuple(n for n in items if n)


def load_port_required(
    known: list[str] | tuple[str, ...], start: Path | None = None, file: Path | None = None
) -> tuple[str, ...]:
    """`[port] require = ["train", ...]` from ./harness.toml (or `file`); () when absent."""
    path = file if file is not None else (start or Path.cwd()) / "harness.toml"
    return required_stages(_port_table(path).get("require", ()), str(path), known)


def load_port_rename(start: Path | None = None, file: Path | None = None) -> tuple[tuple[str, str], ...]:
    """`[port.rename]` rules from ./harness.toml (or `file`), in file order, each checked; () when absent."""
    from harness.rename import Rename

    path = file if file is not None else (start or Path.cwd()) / "harness.toml"
    rules = _port_table(path).get("rename", {})
    if not isinstance(rules, dict):
        raise HarnessError(f"{path}: [port.rename] must be a table of 'pattern' = \"replacement\" rules")
    Rename(rules, f"{path}: [port.rename]")  # every pattern compiles, every replacement applies
    return tuple(rules.items())


def _port_choice(key: str, choices: tuple[str, ...], start: Path | None, file: Path | None) -> str:
    """`[port] <key>` from ./harness.toml (or `file`), one of `choices`; the first when absent."""
    path = file if file is not None else (start or Path.cwd()) / "harness.toml"
    value = _port_table(path).get(key, choices[0])
    if value not in choices:
        raise HarnessError(f"{path}: [port] {key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def load_port_loss_input(start: Path | None = None, file: Path | None = None) -> str:
    """`[port] loss_input`: "probabilities" (the default) or "logits"."""
    return _port_choice("loss_input", LOSS_INPUTS, start, file)


def load_port_layers(start: Path | None = None, file: Path | None = None) -> str:
    """`[port] layers`: "all" (the default) or "output"."""
    return _port_choice("layers", LAYERS, start, file)


def load_port_declarations(start: Path | None = None, file: Path | None = None) -> dict[str, Any]:
    """What ./harness.toml (or `file`) declares about the port beyond its command, as RunConfig fields:
    `rename`, `loss_input`, `layers`."""
    return {
        "rename": load_port_rename(start, file),
        "loss_input": load_port_loss_input(start, file),
        "layers": load_port_layers(start, file),
    }


def load_port_build(file: Path) -> tuple[str | None, list[Path]]:
    """`[port] build` (the command that rebuilds the port, run in the file's directory; None when absent)
    and `[port] watch` (files and directories whose changes start a rebuild, relative to the file; the
    file's directory by default), for `harness watch`."""
    port = _port_table(file)
    base = file.resolve().parent
    build = port.get("build")
    if build is not None and (not isinstance(build, str) or not build.strip()):
        raise HarnessError(f"{file}: [port] build must be a non-empty command")
    watch = port.get("watch", ["."])
    if not isinstance(watch, list) or not all(isinstance(w, str) and w for w in watch):
        raise HarnessError(f"{file}: [port] watch must be a list of paths")
    paths = [(base / w).resolve() for w in watch]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise HarnessError(f"{file}: [port] watch: '{missing[0]}' does not exist")
    return build, paths


def load_port_settings(start: Path | None = None, file: Path | None = None) -> tuple[str | None, float | None]:
    """`[port] cmd = "..."` and `[port] timeout_s = N` from ./harness.toml (or `file`); (None, None) when
    absent. In a config file given by path, a relative program path is relative to that file."""
    path = file if file is not None else (start or Path.cwd()) / "harness.toml"
    if not path.is_file():
        return None, None
    port = _port_table(path)
    cmd = port.get("cmd")
    if cmd is not None and (not isinstance(cmd, str) or not cmd.strip()):
        raise HarnessError(f"{path}: [port] cmd must be a non-empty string")
    timeout = port.get("timeout_s")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise HarnessError(f"{path}: [port] timeout_s must be a positive number of seconds")
        timeout = float(timeout)
    if cmd and file is not None:
        import shlex

        try:
            argv = shlex.split(cmd)
        except ValueError as e:
            raise HarnessError(f"{path}: cannot parse [port] cmd {cmd!r}: {e}") from e
        prog = path.resolve().parent / argv[0]
        if argv and "/" in argv[0] and not Path(argv[0]).is_absolute() and prog.exists():
            cmd = shlex.join([str(prog), *argv[1:]])
    return cmd, timeout


TASKS = ("binary", "multiclass", "regression")
SAMPLE_DTYPES = ("float32", "int64")
# The largest |id| an int64 input may hold: the data stages carry the values as float32, exact up to 2^24
# (16,777,216 ids: more than any tokenizer's vocabulary).
SAMPLE_INT_LIMIT = 1 << 24


def _table(doc: dict[str, Any], key: str, path: Path, allowed: tuple[str, ...]) -> dict[str, Any]:
    t = doc.get(key, {})
    if not isinstance(t, dict):
        raise HarnessError(f"{path}: [{key}] must be a table")
    unknown = sorted(set(t) - set(allowed))
    if unknown:
        raise HarnessError(f"{path}: unknown key '{unknown[0]}' in [{key}]; keys are {', '.join(allowed)}")
    return t


def _number(v: Any, where: str, integer: bool = False, positive: bool = False) -> Any:
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or (positive and not v > 0) or (not integer and v != v):
        kind = "a positive " if positive else "a "
        raise HarnessError(f"{where} must be {kind}{'integer' if integer else 'number'}, got {v!r}")
    return v


def load_model_settings(path: Path) -> dict[str, Any]:
    """RunConfig fields from a harness.toml's [model], [model.loss], [model.optimizer], [train] and
    [data] tables (paths relative to the file). Every key is checked; a bad one is one line, exit 2."""
    try:
        doc: Any = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise HarnessError(f"cannot read {path}: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise HarnessError(f"cannot parse {path}: {e}") from e
    base = path.resolve().parent
    out: dict[str, Any] = {}
    model = _table(doc, "model", path, ("reference", "task", "loss", "optimizer"))
    if "reference" in model:
        ref = model["reference"]
        if not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":")):
            raise HarnessError(f"{path}: [model] reference must be 'module:function', got {ref!r}")
        out["reference"], out["reference_dir"] = ref, base
    task = model.get("task", "binary")
    if task not in TASKS:
        raise HarnessError(f"{path}: [model] task must be one of {', '.join(TASKS)}, got {task!r}")
    out["task"] = task
    loss = model.get("loss", {"name": "BCELoss"} if task == "binary" else {})
    if not isinstance(loss, dict) or "name" not in loss:
        raise HarnessError(f"{path}: [model.loss] needs a name ({', '.join(LOSSES)})")
    name = loss["name"]
    if name not in LOSSES:
        raise HarnessError(f"{path}: [model.loss] name must be one of {', '.join(LOSSES)}, got {name!r}")
    if LOSSES[name].task != task:
        raise HarnessError(f"{path}: {name} is a {LOSSES[name].task} loss; the task is {task}")
    loss = _table(model, "loss", path, ("name", *(o.name for o in LOSSES[name].options))) if "loss" in model else loss
    out["loss"] = name
    options = {}
    for o in LOSSES[name].options:
        if o.name in loss:
            v = float(_number(loss[o.name], f"{path}: [model.loss] {o.name}"))
            if (why := o.check(v)) is not None:
                raise HarnessError(f"{path}: [model.loss] {o.name} {why}")
            options[o.name] = v
    if options:
        out["loss_options"] = options
    opt = model.get("optimizer", {"name": "Adam"})
    if not isinstance(opt, dict) or opt.get("name") not in OPTIMIZERS:
        raise HarnessError(f"{path}: [model.optimizer] name must be one of {', '.join(OPTIMIZERS)}")
    oname = opt["name"]
    spec = OPTIMIZERS[oname]
    opt = {**dict(spec.defaults), **_table(model, "optimizer", path, ("name", *spec.options))}
    out["optimizer"] = oname
    for k in ("lr", "eps", "weight_decay", "momentum"):
        if k in opt:
            out[k] = float(_number(opt[k], f"{path}: [model.optimizer] {k}", positive=k in ("lr", "eps")))
    if "betas" in opt:
        b = opt["betas"]
        if not (isinstance(b, list) and len(b) == 2 and all(isinstance(v, (int, float)) and 0 <= v < 1 for v in b)):
            raise HarnessError(f"{path}: [model.optimizer] betas must be two numbers in [0, 1), got {b!r}")
        out["beta1"], out["beta2"] = float(b[0]), float(b[1])
    if "nesterov" in opt:
        if not isinstance(opt["nesterov"], bool):
            raise HarnessError(f"{path}: [model.optimizer] nesterov must be true or false")
        out["nesterov"] = opt["nesterov"]
    train = _table(doc, "train", path, ("batch_size", "epochs", "seed"))
    for k in ("batch_size", "epochs"):
        if k in train:
            out[k] = _number(train[k], f"{path}: [train] {k}", integer=True, positive=True)
    if "seed" in train:
        out["seed"] = _number(train["seed"], f"{path}: [train] seed", integer=True)
    data = _table(
        doc, "data", path, ("path", "label", "scaler", "test_size", "split_seed", "sample_shape", "sample_dtype")
    )
    if "path" in data:
        if not isinstance(data["path"], str):
            raise HarnessError(f"{path}: [data] path must be a string")
        out["data"] = (base / data["path"]).resolve()
    if "label" in data:
        if not isinstance(data["label"], str) or not data["label"]:
            raise HarnessError(f"{path}: [data] label must be a column name")
        out["label"] = data["label"]
    if "scaler" in data:
        if data["scaler"] not in ("all", "train", "none"):
            raise HarnessError(f"{path}: [data] scaler must be 'all', 'train' or 'none', got {data['scaler']!r}")
        out["scaler"] = data["scaler"]
    if "test_size" in data:
        ts = _number(data["test_size"], f"{path}: [data] test_size", positive=True)
        if not ts < 1:
            raise HarnessError(f"{path}: [data] test_size must be a fraction in (0, 1), got {ts}")
        out["test_size"] = float(ts)
    if "split_seed" in data:
        out["split_seed"] = _number(data["split_seed"], f"{path}: [data] split_seed", integer=True)
    if "sample_shape" in data:
        shape = data["sample_shape"]
        if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            raise HarnessError(f"{path}: [data] sample_shape must be a list of positive integers, got {shape!r}")
        out["sample_shape"] = tuple(shape)
    if "sample_dtype" in data:
        if data["sample_dtype"] not in SAMPLE_DTYPES:
            raise HarnessError(
                f"{path}: [data] sample_dtype must be {' or '.join(map(repr, SAMPLE_DTYPES))}, got {data['sample_dtype']!r}"
            )
        out["sample_dtype"] = data["sample_dtype"]
    if out.get("sample_dtype") == "int64" and out.get("scaler", "all") != "none":
        raise HarnessError(f'{path}: [data] sample_dtype = "int64" takes the ids as they are: set scaler = "none"')
    return out


def resolve(config: Path | None, options: Mapping[str, Any] | None = None, *, discover: bool = True) -> RunConfig:
    """The run a command asks for, the one way every command builds it: RunConfig's defaults, then the
    harness.toml, then `options` (what the user gave on the command line; a None value is not given).

    The file is `config`, or with `discover` and no `config` the working directory's harness.toml when it
    exists (tolerances also from ./pyproject.toml's [tool.harness.tolerances]). An empty `port_cmd` option
    selects the in-process port over the file's command."""
    if config is not None and not config.is_file():
        raise HarnessError(f"config file '{config}' not found")
    fields: dict[str, Any] = {}
    if config is not None or discover:
        toml = config if config is not None else Path("harness.toml")
        if toml.is_file():
            fields.update(load_model_settings(toml))
        cmd, timeout = load_port_settings(file=config)
        fields.update(
            tolerances=load_tolerance_overrides(file=config),
            port_cmd=cmd,
            port_timeout=timeout or PORT_TIMEOUT_S,
            require=load_port_required(STAGE_NAMES, file=config),
            **load_port_declarations(file=config),
        )
    fields.update({k: v for k, v in (options or {}).items() if v is not None})
    if fields.get("port_cmd") == "":
        fields["port_cmd"] = None
    return RunConfig(**fields)
