"""The networks of cfgrl_core and where they run: the MLP, the velocity network's input embeddings, the velocity
network v_theta(s, x_t, t, c) itself, and the choice of device.

The velocity network is an MLP over the concatenation [state, noised action x_t, time embedding, condition
embedding]. The condition is what classifier-free guidance switches on and off: a discrete label (the optimality
variable o of CFGRL, Eq. 15 of the paper) or a continuous vector (a goal, Eqs. 18-19). Wherever the boolean mask
``null`` is True, the condition is replaced by a learned *null* value, so one network represents both
pi(a|s, c) and pi(a|s); that mask is the only way to ask for "no condition".
"""
from __future__ import annotations

import math
import os
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

DEVICE_ENV = "CFGRL_DEVICE"
THREADS_ENV = "CFGRL_THREADS"


def default_device(device: str | torch.device | None = None) -> torch.device:
    """Resolve a device: the argument if given, else ``$CFGRL_DEVICE``, else CUDA when available, else CPU."""
    choice = device if device is not None else os.environ.get(DEVICE_ENV)
    if choice is None or choice == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(choice)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {str(choice)!r}; use cpu, cuda or cuda:<index>") from e
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(choice)!r} was requested but CUDA is not available on this machine")
    return resolved


def default_threads(threads: int | None = None) -> int:
    """torch threads for training and evaluation: the argument if given, else ``$CFGRL_THREADS``, else 1.

    One by default, deliberately. On the 2-core machines this book is made on, two OpenMP threads make a ``book``-size
    step about 1.35x faster when the process has the machine to itself, but beside one other busy process their
    spinning threads make each step 40-170x slower (``benchmarks/under_load.py`` measures it); one thread stays within
    1.5x. Pass 2 (``--threads 2`` or ``CFGRL_THREADS=2``) when the machine is yours alone."""
    value = threads if threads is not None else os.environ.get(THREADS_ENV) or 1
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or isinstance(value, bool):
        where = "threads" if threads is not None else f"${THREADS_ENV}"
        raise ValueError(f"{where} must be an integer >= 1, got {value!r}")
    return n


@contextmanager
def torch_threads(n: int):
    """Run the body with ``n`` torch threads, then restore the previous number."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compiled(fn, what: str = "a loss"):
    """``torch.compile(fn)``, falling back to ``fn`` itself (with one warning) if compilation fails on the first call,
    e.g. on a machine without the C++ compiler inductor needs. Compiling fuses the many small elementwise passes of a
    ``book``-size step (Mish, LayerNorm, the losses) into a few kernels; the numbers then differ from eager mode in
    the last bits of float rounding, so the bit-reproducible ``smoke`` preset stays eager."""
    compiled_fn = torch.compile(fn, dynamic=False)
    state = {"fn": None}

    def call(*args, **kwargs):
        if state["fn"] is not None:
            return state["fn"](*args, **kwargs)
        try:
            out = compiled_fn(*args, **kwargs)
            state["fn"] = compiled_fn
            return out
        except Exception as e:  # noqa: BLE001 - any compiler failure means: run eagerly
            warnings.warn(f"torch.compile of {what} failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                          "running it eagerly", RuntimeWarning, stacklevel=2)
            state["fn"] = fn
            return fn(*args, **kwargs)

    return call


# ---------------------------------------------------------------------------------------------------------- MLP
class _MishFunction(torch.autograd.Function):
    """mish(x) = x tanh(softplus(x)) with tanh(softplus(x)) = n / (n + 2), n = e^x (e^x + 2), and the closed-form

        d mish / dx = t + x (1 - t^2) sigmoid(x),   t = tanh(softplus(x)).

    Same values as ``torch.nn.functional.mish`` (to float rounding) but about 5x faster forward + backward on CPU,
    where aten's mish kernel dominated the update time of the official 3-layer mish networks.
    """

    @staticmethod
    def forward(ctx, x):
        e = torch.exp(x.clamp(max=20.0))      # for x > 20, t = 1 to float precision
        n = e * (e + 2.0)
        t = n / (n + 2.0)
        ctx.save_for_backward(x, t, e)
        return x * t

    @staticmethod
    def backward(ctx, grad):
        x, t, e = ctx.saved_tensors
        return grad * (t + x * (1.0 - t * t) * (e / (e + 1.0)))


class Mish(nn.Module):
    """Mish activation; the closed form above on CPU, aten's fused kernel on accelerators."""

    def forward(self, x):
        return nn.functional.mish(x) if x.device.type != "cpu" else _MishFunction.apply(x)


ACTIVATIONS = {"mish": Mish, "gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


def mlp(in_dim: int, hidden_dims, out_dim: int, activation: str = "mish", layer_norm: bool = False,
        init: str = "default") -> nn.Sequential:
    """[Linear -> activation -> (LayerNorm)] per hidden width, then a Linear to ``out_dim``.

    ``init="xavier_uniform"`` sets Xavier-uniform weights and zero biases (the official goal-conditioned actor).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    width = in_dim
    for hidden in hidden_dims:
        layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        if layer_norm:
            layers.append(nn.LayerNorm(hidden))
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    net = nn.Sequential(*layers)
    if init == "xavier_uniform":
        for m in net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
    return net


class EnsembleMLP(nn.Module):
    """K networks of one :func:`mlp` shape, evaluated together: hidden layer l of member k computes

        h_k <- LayerNorm_k(act(h_k W_{l,k} + b_{l,k})),      W_l of shape (K, in, out) stacked over members,

    one batched matmul (``torch.baddbmm``) per layer instead of K small ones: the twin Q heads of a critic or the
    Gaussian actors of an AWR temperature sweep. The maths are those of K separate networks (each member sees only its
    own weights and loss), the float rounding differs from them in the last bits. Members are initialised as K
    :func:`mlp` built in a row (the same draws from torch's generator), and the state_dict has exactly the keys and
    shapes of ``nn.ModuleList([mlp(...), ...])``, so a checkpoint of either form loads into the other.

    ``forward(x)``: x of shape (B, in) (shared by every member) or (K, B, in); returns (K, B, out).
    """

    def __init__(self, members: int, in_dim: int, hidden_dims, out_dim: int, activation: str = "mish",
                 layer_norm: bool = False):
        super().__init__()
        if members < 1:
            raise ValueError(f"an ensemble needs at least one member, got {members!r}")
        nets = [mlp(in_dim, hidden_dims, out_dim, activation, layer_norm) for _ in range(members)]
        self.members, self.layer_norm = members, layer_norm
        self.act = ACTIVATIONS[activation]()
        linears = [[m for m in net if isinstance(m, nn.Linear)] for net in nets]
        norms = [[m for m in net if isinstance(m, nn.LayerNorm)] for net in nets]
        stack = lambda ps, row=False: nn.Parameter(torch.stack([p.detach() for p in ps])[:, None] if row
                                                   else torch.stack([p.detach().t() for p in ps]).contiguous())
        # weights are stored as (K, in, out), the layout whose batched matmuls need no transposed copies
        self.weights = nn.ParameterList([stack([ls[i].weight for ls in linears]) for i in range(len(linears[0]))])
        self.biases = nn.ParameterList([stack([ls[i].bias for ls in linears], True) for i in range(len(linears[0]))])
        self.norm_weights = nn.ParameterList([stack([ns[i].weight for ns in norms], True)
                                              for i in range(len(norms[0]))])
        self.norm_biases = nn.ParameterList([stack([ns[i].bias for ns in norms], True) for i in range(len(norms[0]))])
        # where each stacked tensor sits in one member's nn.Sequential: name in the ensemble -> name in a member
        stride = 3 if layer_norm else 2
        self._member_names = {}
        for i in range(len(self.weights)):
            self._member_names[f"weights.{i}"] = f"{i * stride}.weight"
            self._member_names[f"biases.{i}"] = f"{i * stride}.bias"
        for i in range(len(self.norm_weights)):
            self._member_names[f"norm_weights.{i}"] = f"{i * stride + 2}.weight"
            self._member_names[f"norm_biases.{i}"] = f"{i * stride + 2}.bias"
        self.register_state_dict_post_hook(EnsembleMLP._as_members)
        self.register_load_state_dict_pre_hook(EnsembleMLP._from_members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.expand(self.members, *x.shape) if x.dim() == 2 else x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = self.act(h)
                if self.layer_norm:
                    h = nn.functional.layer_norm(h, h.shape[-1:]) * self.norm_weights[i] + self.norm_biases[i]
        return h

    def member_parameters(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's parameters as views into the stacked tensors, named and shaped as in its :func:`mlp`."""
        params = dict(self.named_parameters())
        return {member: self._as_member(name, params[name][k]) for name, member in self._member_names.items()}

    @staticmethod
    def _as_member(name: str, value: torch.Tensor) -> torch.Tensor:
        """One member's slice of a stacked tensor, as that member's nn.Linear / nn.LayerNorm holds it (a view):
        a weight matrix (in, out) -> (out, in), a row (1, width) -> (width,)."""
        return value.t() if name.startswith("weights.") else value.reshape(value.shape[-1:])

    @staticmethod
    def _as_members(module, state_dict, prefix, local_metadata):
        for name, member in module._member_names.items():
            stacked = state_dict.pop(prefix + name)
            for k in range(module.members):
                state_dict[f"{prefix}{k}.{member}"] = module._as_member(name, stacked[k]).clone()

    @staticmethod
    def _from_members(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                      error_msgs):
        params = dict(module.named_parameters())
        for name, member in module._member_names.items():
            keys = [f"{prefix}{k}.{member}" for k in range(module.members)]
            if all(key in state_dict for key in keys):
                values = [state_dict.pop(key) for key in keys]
                if name.startswith("weights."):
                    values = [v.t() for v in values]
                state_dict[prefix + name] = torch.stack(values).reshape(params[name].shape)


# --------------------------------------------------------------------------------------------------- embeddings
class SinusoidalTimeEmbedding(nn.Module):
    """Fixed Fourier features of the flow time t in [0, 1].

    e(t) = [sin(1000 t f_0), ..., sin(1000 t f_{d/2-1}), cos(1000 t f_0), ..., cos(1000 t f_{d/2-1})],
    f_i = max_period^(-i / (d/2)): the transformer positional encoding of 1000 t, as in diffusion models.
    """

    def __init__(self, dim: int = 16, max_period: float = 10_000.0):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"time embedding dim must be an even integer >= 2, got {dim}")
        half = dim // 2
        freqs = 1000.0 * torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class ScalarTime(nn.Module):
    """The raw scalar t as a single feature (the official goal-conditioned actor)."""

    dim = 1

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return t[:, None]


class LabelEmbedding(nn.Module):
    """A table of ``num_labels + 1`` learned vectors: one per label in {0, ..., num_labels - 1}, and a last row that
    stands for the null condition (selected by the ``null`` mask)."""

    def __init__(self, num_labels: int = 2, dim: int = 32):
        super().__init__()
        self.num_labels = num_labels
        self.table = nn.Embedding(num_labels + 1, dim)
        self.dim = dim

    def forward(self, labels: torch.Tensor, null: torch.Tensor | None = None) -> torch.Tensor:
        if null is not None:
            labels = torch.where(null, torch.full_like(labels, self.num_labels), labels)
        return self.table(labels)


class GoalEmbedding(nn.Module):
    """The goal vector itself, replaced by a learned null vector where ``null`` is True."""

    def __init__(self, goal_dim: int):
        super().__init__()
        self.null_goal = nn.Parameter(torch.zeros(goal_dim))
        self.dim = goal_dim

    def forward(self, goals: torch.Tensor, null: torch.Tensor | None = None) -> torch.Tensor:
        if null is None:
            return goals
        return torch.where(null[:, None], self.null_goal.expand_as(goals), goals)


# ------------------------------------------------------------------------------------------ velocity network
CONDITIONS = ("label", "goal")
TIME_EMBEDDINGS = ("sinusoidal", "scalar")
INITS = ("default", "xavier_uniform")


@dataclass
class FlowPolicyConfig:
    """Everything that defines a flow policy's architecture (saved with its weights).

    Defaults follow the official offline-RL actor of CFGRL: 3x512 MLP, mish, LayerNorm,
    16-d sinusoidal time embedding, 32-d label embedding, 16 Euler steps at sampling time
    (the official offline-RL runs used 32; the goal-conditioned ones 16).
    For the goal-conditioned setting use ``condition="goal"``, ``activation="gelu"``,
    ``layer_norm=False``, ``time_embedding="scalar"``, ``init="xavier_uniform"``, hidden (512,)*4.
    """

    obs_dim: int
    action_dim: int
    condition: str = "label"
    num_labels: int = 2
    goal_dim: int = 0
    hidden_dims: tuple[int, ...] = (512, 512, 512)
    activation: str = "mish"
    layer_norm: bool = True
    time_embedding: str = "sinusoidal"
    time_embed_dim: int = 16
    label_embed_dim: int = 32
    init: str = "default"
    action_low: float = -1.0
    action_high: float = 1.0
    sample_steps: int = 16

    def __post_init__(self):
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        problems = []
        if not isinstance(self.obs_dim, int) or self.obs_dim < 0:
            problems.append(f"obs_dim must be an integer >= 0, got {self.obs_dim!r}")
        if not isinstance(self.action_dim, int) or self.action_dim < 1:
            problems.append(f"action_dim must be an integer >= 1, got {self.action_dim!r}")
        if self.condition not in CONDITIONS:
            problems.append(f"condition must be one of {CONDITIONS}, got {self.condition!r}")
        if self.condition == "label" and self.num_labels < 1:
            problems.append(f"num_labels must be >= 1, got {self.num_labels!r}")
        if self.condition == "goal" and self.goal_dim < 1:
            problems.append(f"goal_dim must be >= 1 when condition='goal', got {self.goal_dim!r}")
        if not self.hidden_dims or min(self.hidden_dims) < 1:
            problems.append(f"hidden_dims must be a non-empty tuple of positive widths, got {self.hidden_dims!r}")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        if self.time_embedding not in TIME_EMBEDDINGS:
            problems.append(f"time_embedding must be one of {TIME_EMBEDDINGS}, got {self.time_embedding!r}")
        if self.init not in INITS:
            problems.append(f"init must be one of {INITS}, got {self.init!r}")
        if not self.action_low < self.action_high:
            problems.append(f"action_low must be < action_high, got {self.action_low!r}, {self.action_high!r}")
        if not isinstance(self.sample_steps, int) or self.sample_steps < 1:
            problems.append(f"sample_steps must be an integer >= 1, got {self.sample_steps!r}")
        if problems:
            raise ValueError("invalid FlowPolicyConfig: " + "; ".join(problems))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden_dims"] = list(self.hidden_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FlowPolicyConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown FlowPolicyConfig keys {unknown}; known keys are {sorted(known)}")
        return cls(**d)


class VelocityMLP(nn.Module):
    """v_theta(s, x_t, t, c): predicts the flow velocity dx_t/dt of the action at time t."""

    def __init__(self, config: FlowPolicyConfig):
        super().__init__()
        self.config = config
        if config.time_embedding == "sinusoidal":
            self.time_embed = SinusoidalTimeEmbedding(config.time_embed_dim)
        else:
            self.time_embed = ScalarTime()
        if config.condition == "label":
            self.cond_embed = LabelEmbedding(config.num_labels, config.label_embed_dim)
        else:
            self.cond_embed = GoalEmbedding(config.goal_dim)
        width = config.obs_dim + config.action_dim + self.time_embed.dim + self.cond_embed.dim
        self.mlp = mlp(width, config.hidden_dims, config.action_dim, config.activation, config.layer_norm,
                       config.init)

    def forward(
        self,
        obs: torch.Tensor,
        x_t: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
        null: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """obs (B, obs_dim), x_t (B, action_dim), t (B,), cond (B,) labels or (B, goal_dim); null (B,) bool."""
        h = torch.cat([obs, x_t, self.time_embed(t), self.cond_embed(cond, null)], dim=-1)
        return self.mlp(h)
