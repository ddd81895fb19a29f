"""Which devices a run uses: the platform, the processes of a multi-host
job, the data-parallel mesh, and what report.json says about them.

`configure` must run before anything touches a device (the entry points
call it from `experiments.cli.run`). JAX's own runtime does the distributed
work: `jax.distributed.initialize` joins the processes, a `jax.make_mesh`
axis "data" shards every batch, and the compiler averages the gradients.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from avdigits.errors import ConfigError

PLATFORMS = ("cpu", "gpu", "tpu")
DATA_AXIS = "data"
HEARTBEAT_SECONDS = 30
# Matrix-product precision (`jax_default_matmul_precision`): "highest" is
# full float32 everywhere; "high" / "default" allow faster reduced-precision
# products (TF32, bfloat16 passes) on accelerators.
PRECISIONS = ("highest", "high", "default")


def set_precision(precision: str, flag: str = "--config.matmul_precision"
                  ) -> None:
  """Sets the precision of every matrix product and convolution."""
  if precision not in PRECISIONS:
    raise ConfigError(f"{flag}={precision!r}: choose one of "
                      f"{', '.join(PRECISIONS)}")
  jax.config.update("jax_default_matmul_precision", precision)


def configure(platform: str | None = None, *,
              coordinator_address: str | None = None,
              num_processes: int | None = None,
              process_id: int | None = None,
              deterministic: bool = True) -> None:
  """Selects the platform and joins a multi-process job, in that order.

  Args:
    platform: "cpu", "gpu" or "tpu"; None leaves JAX's choice
      (`JAX_PLATFORMS`, else the best present).
    coordinator_address, num_processes, process_id: a multi-process job
      (`jax.distributed.initialize`); all None for one process. On TPU pods
      and SLURM, `num_processes=-1` lets JAX detect them.
    deterministic: deterministic GPU reductions (XLA flag
      --xla_gpu_deterministic_ops), so reruns and resumes repeat exactly.
  """
  if deterministic and "xla_gpu_deterministic_ops" not in os.environ.get(
      "XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_gpu_deterministic_ops=true").strip()
  if platform is not None:
    if platform not in PLATFORMS:
      raise ConfigError(f"--platform={platform!r}: choose one of "
                        f"{', '.join(PLATFORMS)}")
    jax.config.update("jax_platforms", platform)
  if num_processes is not None and num_processes != 1:
    kwargs: dict[str, Any] = {}
    if num_processes > 0:
      if coordinator_address is None or process_id is None:
        raise ConfigError("--num_processes > 1 needs --coordinator_address "
                          "and --process_id")
      if not 0 <= process_id < num_processes:
        raise ConfigError(f"--process_id={process_id} must be in [0, "
                          f"{num_processes})")
      kwargs = {"coordinator_address": coordinator_address,
                "num_processes": num_processes, "process_id": process_id}
    # A lost process is noticed within HEARTBEAT_SECONDS (JAX: 100).
    jax.distributed.initialize(**kwargs,
                               heartbeat_timeout_seconds=HEARTBEAT_SECONDS)
  try:
    jax.devices()
  except RuntimeError as error:
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    raise ConfigError(f"--platform={platform}: no usable {platform} device "
                      f"here ({first}); choose another --platform") from None


def info() -> dict[str, Any]:
  """What report.json and the benchmark record about the devices."""
  device = jax.devices()[0]
  return {"backend": jax.default_backend(),
          "device_kind": device.device_kind,
          "device_count": jax.device_count(),
          "local_device_count": jax.local_device_count(),
          "process_count": jax.process_count(),
          "matmul_precision": jax.config.jax_default_matmul_precision
                              or "default",
          "jax_version": jax.__version__}


def is_writer() -> bool:
  """Whether this process writes reports, figures and stage files."""
  return jax.process_index() == 0


def data_mesh() -> jax.sharding.Mesh:
  """Every device of the job on one axis, "data" (sharding left to the
  compiler: `AxisType.Auto`)."""
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,))


def process_mesh() -> jax.sharding.Mesh:
  """One device per process (its first) on the axis "data": where work that
  does not split (one image per alignment iteration) runs, replicated over
  the processes of a job and on a single device of each."""
  first = {}
  for device in jax.devices():
    first.setdefault(device.process_index, device)
  return jax.sharding.Mesh(np.array(list(first.values())), (DATA_AXIS,))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: jax.sharding.Mesh, leading: int = 0
                  ) -> NamedSharding:
  """The batch axis (after `leading` others, e.g. a chunk's steps) split
  over "data"."""
  return NamedSharding(mesh, PartitionSpec(*([None] * leading), DATA_AXIS))


AUTO_CHOICES = ("auto", "true", "false")


def on_accelerator(choice: str, flag: str) -> bool:
  """An "auto"/"true"/"false" switch; "auto" is true on GPU/TPU only. Used
  for scanned chunks (per-step host work dominates on accelerators, while
  XLA:CPU runs convolutions in a loop far slower than at top level) and for
  vmapped seeds (one program for all seeds fills an accelerator; on CPU,
  vmapped convolutions become slower grouped ones)."""
  if choice not in AUTO_CHOICES:
    raise ConfigError(f"--config.{flag}={choice!r}: choose one of "
                      f"{', '.join(AUTO_CHOICES)}")
  return choice == "true" or (choice == "auto"
                              and jax.default_backend() != "cpu")


def check_batch(batch_size: int, mesh: jax.sharding.Mesh, flag: str) -> None:
  """A global batch must split evenly over the data axis."""
  devices = mesh.shape[DATA_AXIS]
  if batch_size % devices:
    raise ConfigError(f"--config.{flag}.batch_size={batch_size} does not "
                      f"split over the {devices} devices of the data axis; "
                      f"use a multiple of {devices}")


def global_batch(local_or_global: np.ndarray,
                 sharding: NamedSharding) -> jax.Array:
  """A global array sharded by `sharding` from a host array every process
  holds in full (each process contributes its own devices' slices; one
  process places it directly, the cheaper call on the per-step path)."""
  if jax.process_count() == 1:
    return jax.device_put(local_or_global, sharding)
  return jax.make_array_from_callback(local_or_global.shape, sharding,
                                      lambda index: local_or_global[index])
