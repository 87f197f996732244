"""The card lock is keyed by the card's UUID: different cards never block each other, one card is held
by one process at a time (also across containers sharing the lock folder), and it is re-entrant."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from packshot import gpu

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from packshot.gpu import gpu_lock
    print("trying", flush=True)
    with gpu_lock("cuda:0", Path(sys.argv[1]), uuid=sys.argv[2]):  # every worker sees its card as cuda:0
        print("acquired", flush=True)
        if sys.argv[3] == "hold":
            sys.stdin.readline()
    print("released", flush=True)
""")


def _start(lock_dir: Path, uuid: str, hold: bool) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(lock_dir), uuid, "hold" if hold else "go"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "trying"
    return proc


def test_two_processes_on_one_card_take_turns_and_two_cards_do_not_block(tmp_path):
    locks = tmp_path / "locks"  # a folder two containers on one card would both mount
    holder = _start(locks, "GPU-aaaa-1111", hold=True)
    assert holder.stdout.readline().strip() == "acquired"
    waiting = _start(locks, "GPU-aaaa-1111", hold=False)  # the same card: must wait
    other = _start(locks, "GPU-bbbb-2222", hold=False)  # another card: runs while the first is held
    assert other.communicate(timeout=60)[0].split() == ["acquired", "released"]
    assert waiting.poll() is None, "a second process took card GPU-aaaa-1111 while it was held"
    holder.stdin.write("release\n")
    holder.stdin.flush()
    assert holder.communicate(timeout=60)[0].split() == ["released"]
    assert waiting.communicate(timeout=60)[0].split() == ["acquired", "released"]
    assert sorted(p.name for p in locks.iterdir()) == ["GPU-aaaa-1111.lock", "GPU-bbbb-2222.lock"]


def test_lock_is_reentrant_in_a_thread_and_a_no_op_on_cpu(tmp_path):
    with gpu.gpu_lock("cuda:0", tmp_path, uuid="GPU-x"), gpu.gpu_lock("cuda:0", tmp_path, uuid="GPU-x"):
        pass  # a model load inside a locked call does not deadlock
    with gpu.gpu_lock("cpu", tmp_path):
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["GPU-x.lock"]


def test_card_uuid_comes_from_the_device_properties_not_the_index(monkeypatch):
    import torch

    class Props:
        def __init__(self, uuid):
            self.uuid = uuid

    cards = {0: Props("5f1c0a2e-0000-4000-8000-00000000000a"),
             1: Props("5f1c0a2e-0000-4000-8000-00000000000b")}
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: cards[index])
    gpu.card_uuid.cache_clear()
    try:
        assert gpu.card_uuid("cuda") == "GPU-5f1c0a2e-0000-4000-8000-00000000000a"
        assert gpu.card_uuid("cuda:1") == "GPU-5f1c0a2e-0000-4000-8000-00000000000b"
        assert gpu.card_uuid("cpu") is None
        assert gpu.lock_name("MIG-1/2") == "MIG-1_2.lock"
    finally:
        gpu.card_uuid.cache_clear()


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_device_index(device):
    assert gpu.device_index(device) == (1 if device.endswith("1") else 0)
    assert gpu.device_index("cpu") is None
