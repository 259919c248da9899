"""Streaming prediction: equal to CrevNet.predict, forecasts leave the state alone, O(1) work per frame."""

from __future__ import annotations

import pytest
import torch

from crevnet.nn import CrevNet
from crevnet.nn.stream import (
    FrameStream,
    StreamGraphs,
    advance,
    flatten_state,
    forecast,
    unflatten_state,
    zero_state,
)
from crevnet.testing import tiny_config

TINY = {3: tiny_config(3), 2: tiny_config(2, cell="conv_lstm")}


def _model(dims: int) -> CrevNet:
    torch.manual_seed(0)
    return CrevNet(TINY[dims]).eval()


def _video(b: int = 2, t: int = 9, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, t, 1, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dims", [2, 3])
def test_stream_equals_predict_after_every_frame(dims: int) -> None:
    model = _model(dims)
    video = _video()
    stream = FrameStream(model)
    w = model.config.window
    for t in range(video.shape[1]):
        stream.push(video[:, t])  # one (B, C, H, W) frame per stream
        assert stream.ready == (t + 1 >= w)
        if t + 1 >= w:
            with torch.no_grad():
                expected = model.predict(video[:, : t + 1], horizon=5)
            torch.testing.assert_close(stream.forecast(5), expected, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
def test_pushing_many_frames_equals_pushing_one_by_one(dims: int) -> None:
    model = _model(dims)
    video = _video(t=8)
    one, many = FrameStream(model), FrameStream(model)
    for t in range(8):
        one.push(video[:, t])
    many.push(video[:, :2])  # fewer frames than a window: no RPM step yet in 3-D
    many.push(video[:, 2:8])
    assert one.state.seen == many.state.seen == 8
    torch.testing.assert_close(many.forecast(4), one.forecast(4), atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
def test_forecast_leaves_the_state_untouched(dims: int) -> None:
    model = _model(dims)
    video = _video(t=8)
    plain, peeking = FrameStream(model), FrameStream(model)
    for t in range(8):
        plain.push(video[:, t])
        peeking.push(video[:, t])
        if peeking.ready:
            before = [x.clone() for x in (peeking.state.recent, peeking.state.latent, *peeking.state.rpm)]
            first = peeking.forecast(6)
            after = (peeking.state.recent, peeking.state.latent, *peeking.state.rpm)
            assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
            assert torch.equal(peeking.forecast(6), first)  # asking again gives the same answer
    # the next real frames continue exactly as if no forecast had been asked for
    assert torch.equal(peeking.forecast(3), plain.forecast(3))


def test_work_per_frame_is_one_encode_and_one_step() -> None:
    model = _model(3)
    graphs = StreamGraphs.from_model(model)
    calls = {"encode": 0, "windows": 0, "step": 0, "decode": 0}

    def encode(x: torch.Tensor) -> torch.Tensor:
        calls["encode"] += 1
        calls["windows"] += x.shape[0]
        return graphs.encode(x)

    def step(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        calls["step"] += 1
        return graphs.step(*args)

    def decode(z: torch.Tensor) -> torch.Tensor:
        calls["decode"] += 1
        return graphs.decode(z)

    counted = graphs._replace(encode=encode, step=step, decode=decode)
    video = _video(b=2, t=40)
    stream = FrameStream(counted)
    stream.push(video[:, :30])
    before = dict(calls)
    stream.push(video[:, 30])
    assert calls["windows"] - before["windows"] == 2  # one window per stream, batch 2
    assert calls["step"] - before["step"] == 1 and calls["decode"] == before["decode"] == 0
    before = dict(calls)
    stream.forecast(4)  # 3 steps; the first two re-encode a window with observed slots; 1 batched decode
    assert calls["step"] - before["step"] == 3
    assert (calls["encode"] - before["encode"], calls["decode"] - before["decode"]) == (2, 3)


def test_flatten_state_round_trip() -> None:
    model = _model(3)
    z = torch.rand(2, 16, 3, 4, 4)
    _, state = model.predictor(z, None)
    flat = flatten_state(state)
    assert len(flat) == 2 * 2 + 1  # h, c per layer + the ST-LSTM memory
    back = unflatten_state(flat, 2)
    assert all(torch.equal(a, b) for a, b in zip(flatten_state(back), flat, strict=True))
    with pytest.raises(ValueError, match="holds 4 or 5 tensors"):
        unflatten_state(flat[:3], 2)


def test_zero_state_step_equals_the_predictors_initial_step() -> None:
    model = _model(2)
    graphs = StreamGraphs.from_model(model)
    z = torch.rand(1, 16, 2, 2)
    with torch.no_grad():
        expected, state = model.predictor(z, None)
        out = graphs.step(z, *(torch.zeros(1, 8, 2, 2) for _ in range(graphs.state_size)))
    assert torch.equal(out[0], expected)
    assert all(torch.equal(a, b) for a, b in zip(out[1:], flatten_state(state), strict=True))


@pytest.mark.parametrize("dims", [2, 3])
def test_stream_of_an_rpm_wider_than_a_half_equals_predict(dims: int) -> None:
    torch.manual_seed(0)
    model = CrevNet(tiny_config(dims, hidden=5)).eval()
    graphs = StreamGraphs.from_model(model)
    assert graphs.state_channels == 5
    video = _video(t=6)
    stream = FrameStream(graphs)
    stream.push(video)
    assert all(t.shape[:2] == (2, 5) for t in stream.state.rpm)
    with torch.no_grad():
        expected = model.predict(video, horizon=4)
    torch.testing.assert_close(stream.forecast(4), expected, atol=2e-6, rtol=1e-5)


def test_zero_state_has_the_cells_width_or_one_half() -> None:
    graphs = StreamGraphs.from_model(_model(2))
    latent = torch.rand(3, 16, 2, 2)
    assert [t.shape for t in zero_state(graphs, latent)] == [(3, 8, 2, 2)] * graphs.state_size
    wide = graphs._replace(state_channels=12)
    assert {t.shape for t in zero_state(wide, latent)} == {(3, 12, 2, 2)}
    old = graphs._replace(state_channels=None)  # an export without the field: one latent half
    assert {t.shape for t in zero_state(old, latent)} == {(3, 8, 2, 2)}


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (torch.rand(2, 1, 16, 8), r"must match the stream's: 2 stream\(s\) of 1×8×8.*got 2 of 1×16×8"),
        (torch.rand(2, 3, 8, 8), r"got 2 of 3×8×8"),
        (torch.rand(1, 1, 8, 8), r"got 1 of 1×8×8"),
        (torch.rand(8, 8), r"expected a frame \(B, C, H, W\)"),
        (torch.zeros(2, 1, 8, 8, dtype=torch.uint8), "floating-point"),
    ],
)
def test_a_frame_of_another_shape_mid_stream_is_refused(frame: torch.Tensor, match: str) -> None:
    stream = FrameStream(_model(3))
    stream.push(_video(t=4))
    state = stream.state
    with pytest.raises(ValueError, match=match):
        stream.push(frame)
    assert stream.state is state  # the stream goes on from where it was


def test_first_frame_and_forecast_errors() -> None:
    stream = FrameStream(_model(3))
    with pytest.raises(ValueError, match="1-channel frames, got 3"):
        stream.push(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="multiples of 4"):
        stream.push(torch.rand(1, 1, 6, 8))
    with pytest.raises(ValueError, match="at least 3 frame"):
        stream.forecast(1)
    stream.push(torch.rand(1, 2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"at least 3 frame\(s\) \(one window\), 2 received"):
        stream.forecast(1)
    stream.push(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="horizon 0: expected a positive number of frames"):
        stream.forecast(0)
    assert stream.forecast(2).shape == (1, 2, 1, 8, 8)
    stream.reset()
    assert not stream.ready


def test_functional_core_returns_new_states() -> None:
    model = _model(2)
    graphs = StreamGraphs.from_model(model)
    video = _video(t=5)
    with torch.no_grad():
        s3 = advance(graphs, None, video[:, :3])
        s4 = advance(graphs, s3, video[:, 3])
        again = advance(graphs, s3, video[:, 3])
        assert s3.seen == 3 and s4.seen == 4
        torch.testing.assert_close(forecast(graphs, s4, 2), forecast(graphs, again, 2), atol=0, rtol=0)
        expected = model.predict(video[:, :3], 2)
        torch.testing.assert_close(forecast(graphs, s3, 2), expected, atol=2e-6, rtol=1e-5)
