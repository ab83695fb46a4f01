"""A training step never reads a value back to the host.

On a GPU, ``.cpu()``, ``.item()``, ``float(tensor)``, ``bool(tensor)``,
``.nonzero()`` and their kin copy to the host and stall the device until
every queued kernel has run; one per step makes training wait on Python.
This machine has no GPU, so the check counts those calls (a
``TorchFunctionMode`` sees every tensor operation) while a model is in its
training step: from the forward pass of a model in training mode to the end
of ``optimizer.step()``. Per-epoch scoring and the one-off teacher pass are
outside the step and may copy. The methods are those of the CIFAR-100 GPU
batch, with the teacher losses they need (CE, the DUS fine-tune).
"""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from calibkd.config import STUDENT_METHODS, TrainConfig
from calibkd.methods.calibration import make_calibrator
from calibkd.methods.losses import build_loss
from calibkd.nn.inference import predict_logits
from calibkd.nn.models import build_model
from calibkd.training import loop
from calibkd.training.students import train_student
from calibkd.training.teacher_logits import TeacherLogits

#: Tensor operations that copy a value to the host (or need its value there).
HOST_READS = {"cpu", "item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__",
              "nonzero", "masked_select", "unique"}
#: Indexing with a boolean mask reads the mask's count back (the result's shape depends on it).
INDEXING = {"__getitem__", "__setitem__", "index_put_", "index_put"}
CONFIG = TrainConfig(epochs=1, batch_size=32, lr=0.05, monitor_size=50)


def _has_mask(values) -> bool:
    """Whether an index (possibly a tuple or list of indices) holds a boolean tensor."""
    for value in values:
        if isinstance(value, (tuple, list)) and _has_mask(value):
            return True
        if isinstance(value, torch.Tensor) and value.dtype == torch.bool:
            return True
    return False


class HostReads(TorchFunctionMode):
    """Counts host reads made while ``active`` (with the operation's name)."""

    def __init__(self) -> None:
        super().__init__()
        self.active = False
        self.reads: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if self.active:
            to_cpu = name == "to" and any(str(a) == "cpu" for a in (*args[1:], kwargs.get("device")))
            if name in HOST_READS or to_cpu:
                self.reads.append(name)
            elif name in INDEXING and _has_mask(args[1:]):
                self.reads.append(f"{name} with a boolean mask")
        return func(*args, **kwargs)


@pytest.fixture
def reads(monkeypatch):
    """A ``HostReads`` switched on by a training-mode forward pass and off
    after every optimiser step of ``loop.train_model``."""
    counter = HostReads()
    make_optimizer = loop.make_optimizer

    def counting_optimizer(model, config, steps_per_epoch):
        optimizer, schedule = make_optimizer(model, config, steps_per_epoch)
        optimizer.register_step_post_hook(lambda *_: setattr(counter, "active", False))
        model.register_forward_pre_hook(lambda module, _: setattr(counter, "active", module.training or counter.active))
        return optimizer, schedule

    monkeypatch.setattr(loop, "make_optimizer", counting_optimizer)
    with counter:
        yield counter


def _teacher(splits):
    torch.manual_seed(0)
    return build_model("resnet", 1, 10, width=4, stem_stride=2).eval()


@pytest.mark.parametrize("loss,params", [("ce", {}), ("dus", {"gate": "soft"}), ("dus", {"gate": "hard"})])
def test_a_teacher_step_reads_nothing_back(tiny_splits, reads, loss, params):
    model = build_model("resnet", 1, 10, width=4, stem_stride=2)
    loop.train_model(model, tiny_splits, CONFIG, build_loss(loss, params), progress=False)
    assert reads.reads == []


@pytest.mark.parametrize("name", ["ce", "kd", "kd_ts", "dkd", "cud", "cudp"])
def test_a_student_step_reads_nothing_back(tiny_splits, reads, name):
    method = STUDENT_METHODS[name]
    teacher = _teacher(tiny_splits)
    logits = TeacherLogits(teacher, "teacher", tiny_splits, CONFIG)
    calibrator = None
    if method.calibrator:
        calibrator = make_calibrator("temperature").fit(predict_logits(teacher, tiny_splits.val.images),
                                                         tiny_splits.val.labels)
    torch.manual_seed(1)
    student = build_model("small_cnn", 1, 10, width=4)
    train_student(student, tiny_splits, CONFIG, method.distill, logits, "teacher", calibrator, progress=False)
    assert reads.reads == []


def test_the_counter_sees_a_host_read(tiny_splits, reads):
    """The check itself: a loss that reads a value back is caught."""
    ce = build_loss("ce", {})

    def reading_loss(logits, targets):
        loss = ce(logits, targets)
        float(loss.detach())
        return loss

    loop.train_model(build_model("small_cnn", 1, 10, width=4), tiny_splits, CONFIG, reading_loss, progress=False)
    assert "__float__" in reads.reads


def test_the_counter_sees_a_boolean_mask(tiny_splits, reads):
    ce = build_loss("ce", {})

    def masking_loss(logits, targets):
        return ce(logits[targets >= 0], targets[targets >= 0])

    loop.train_model(build_model("small_cnn", 1, 10, width=4), tiny_splits, CONFIG, masking_loss, progress=False)
    assert "__getitem__ with a boolean mask" in reads.reads
