"""The blocking client used wrongly raises at the call, with a message that says what to do;
and it has the async client's options and methods, so neither drifts from the other."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

import tether
import tether.sync

#: What the blocking client adds to the async client's constructor.
SYNC_ONLY_OPTIONS = {"backend", "backend_options"}
#: The async client's methods the blocking one does without: leaving ``with`` is its
#: ``aclose()``.
ASYNC_ONLY = {"aclose"}


def test_blocking_methods_before_entering_raise() -> None:
    rt = tether.sync.RealtimeClient("http://127.0.0.1:9")
    calls: dict[str, Callable[[], Any]] = {
        "call": lambda: rt.call("x"),
        "wait_connected": lambda: rt.wait_connected(1),
        "get_members": lambda: rt.get_members("room"),
        "events": lambda: rt.events(),
        "open": rt.open,
    }
    for method, call in calls.items():
        with pytest.raises(RuntimeError) as info:
            call()
        assert f"tether.sync.RealtimeClient.{method}(): the client is not running" in str(
            info.value
        )
        assert "with tether.sync.RealtimeClient(...) as rt:" in str(info.value)
    assert rt.state is tether.State.IDLE


def test_async_listeners_are_refused() -> None:
    rt = tether.sync.RealtimeClient("http://127.0.0.1:9")

    async def listener(*args: Any) -> None: ...

    registrations: list[Callable[[Any], Any]] = [
        lambda fn: rt.on("x", fn),
        lambda fn: rt.once("x", fn),
        rt.on_any,
        rt.on_connect,
        rt.on_disconnect,
        rt.on_error,
        rt.on_reconnect_attempt,
        rt.on_reconnect,
        rt.on_reconnect_failed,
        rt.on_state_change,
        rt.on_buffer_overflow,
        rt.on_join,
        rt.on_leave,
        rt.on_update,
        rt.on_user_event,
    ]
    for register in registrations:
        with pytest.raises(TypeError, match="give it a plain function"):
            register(listener)
    assert rt.listeners("x") == []


def test_bad_options_raise_at_construction() -> None:
    with pytest.raises(ValueError, match="backend must be"):
        tether.sync.RealtimeClient("http://127.0.0.1:9", backend="curio")
    with pytest.raises(ValueError):
        tether.sync.RealtimeClient("ftp://example.test")
    with pytest.raises(ValueError):
        tether.sync.RealtimeClient("http://127.0.0.1:9", reconnection_delay=-1)


def test_entering_twice_raises() -> None:
    with (
        tether.sync.RealtimeClient("http://127.0.0.1:9", auto_connect=False) as rt,
        pytest.raises(RuntimeError, match="already entered"),
    ):
        rt.__enter__()


def test_repr_has_no_secret() -> None:
    rt = tether.sync.RealtimeClient("http://127.0.0.1:9/?token=s3cret", auth={"token": "s3cret"})
    assert repr(rt) == "<tether.sync.RealtimeClient http://127.0.0.1:9/ state=idle>"


def test_the_same_options_as_the_async_client() -> None:
    sync_options = inspect.signature(tether.sync.RealtimeClient).parameters
    async_options = inspect.signature(tether.RealtimeClient).parameters
    assert set(sync_options) - SYNC_ONLY_OPTIONS == set(async_options)
    for name, parameter in async_options.items():
        assert sync_options[name].default == parameter.default, name
        assert sync_options[name].kind == parameter.kind, name


def public(cls: type) -> dict[str, Any]:
    return {name: member for name, member in vars(cls).items() if not name.startswith("_")}


def test_the_same_methods_as_the_async_client() -> None:
    sync_methods = public(tether.sync.RealtimeClient)
    async_methods = public(tether.RealtimeClient)
    assert set(sync_methods) == set(async_methods) - ASYNC_ONLY
    for name, member in async_methods.items():
        if name in ASYNC_ONLY or isinstance(member, property):
            continue
        sync_parameters = dict(inspect.signature(sync_methods[name]).parameters)
        if name == "events":
            del sync_parameters["timeout"]  # the blocking iterator's wait
        assert list(sync_parameters) == list(inspect.signature(member).parameters), name
        # The async methods block in the blocking client; the rest are the same kind.
        assert not inspect.iscoroutinefunction(sync_methods[name]), name
