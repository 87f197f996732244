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


def test_budget_comes_from_the_card_and_a_freed_model_is_dropped_by_its_holder(monkeypatch):
    from packshot import memory

    monkeypatch.setattr(memory, "card_total_bytes", lambda device: 24 * 1024**3 if device == "cuda" else None)
    reg = ModelRegistry()
    assert reg.budget_from_card("cuda", reserve_bytes=1024**3) == 23 * 1024**3
    assert reg.budget_from_card("cpu") is None

    class Holder:  # what the run context does: keep a reference, drop it when the registry frees it
        model = None

    holder = Holder()
    holder.model = reg.get("flux", lambda: torch.nn.Linear(8, 8))
    reg.on_free(lambda key: setattr(holder, "model", None) if key == "flux" else None)
    with reg.recording() as keys:
        reg.get("flux", lambda: None)
    assert keys == {"flux"}
    assert reg.free_where(lambda key: key.startswith("fl")) == ["flux"]
    assert holder.model is None and reg.loaded() == []


def test_bytes_are_counted_where_they_live_and_fp8_storage_counts_one_byte():
    from packshot.registry import model_bytes
    from stages.background.tiny import build_transformer

    transformer = build_transformer()
    on_card, host = model_bytes(transformer)
    assert on_card == 0 and host == sum(p.numel() * 4 for p in transformer.parameters())
    linear_weights = sum(m.weight.numel() for m in transformer.modules() if isinstance(m, torch.nn.Linear))
    transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    fp8 = sum(p.numel() for p in transformer.parameters() if p.dtype == torch.float8_e4m3fn)
    assert fp8 >= 0.7 * linear_weights  # most linear weights (diffusers keeps norms and embedders)
    assert model_bytes(transformer)[1] == host - 3 * fp8  # 4 bytes -> 1 byte each
