"""The model registry loads each model once per process and frees old ones to make room."""

import torch

from packshot.registry import ModelRegistry


def test_model_loaded_once_and_reused():
    reg = ModelRegistry()
    calls = []

    def load():
        calls.append(1)
        return torch.nn.Linear(4, 4)

    first = reg.get("lin", load)
    for _ in range(5):
        assert reg.get("lin", load) is first
    assert len(calls) == 1 and reg.load_counts == {"lin": 1}
    assert reg.resident_bytes() == (16 + 4) * 4


def test_budget_frees_least_recently_used_before_loading():
    one_mb = 256 * 1024  # float32 elements in 1 MB
    reg = ModelRegistry(budget_bytes=int(2.5 * 1024 * 1024))
    reg.get("a", lambda: torch.nn.Linear(one_mb, 1, bias=False))
    reg.get("b", lambda: torch.nn.Linear(one_mb, 1, bias=False))
    reg.get("a", lambda: None)  # touch a: b is now least recently used
    reg.get("c", lambda: torch.nn.Linear(one_mb, 1, bias=False), size_hint=1024 * 1024)
    assert reg.loaded() == ["a", "c"]


def test_identity_tracks_adapter_changes():
    reg = ModelRegistry()
    reg.get("flux", lambda: object(), identity="flux-fill@rev1")
    reg.set_identity("flux", "flux-fill@rev1+lora:nordic")
    assert reg.identity("flux") == "flux-fill@rev1+lora:nordic"
