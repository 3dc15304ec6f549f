"""Test support: a fault-injection TCP proxy (see README.md in this folder)."""

from .chaos import CHAOS_FAULTS, ChaosStep, chaos, play
from .frames import FrameFaults, FrameFilter, build_frame
from .kinds import Corruption, Direction, Fault
from .proxy import FaultProxy, ProxiedConnection, ProxyStats

__all__ = [
    "CHAOS_FAULTS",
    "ChaosStep",
    "Corruption",
    "Direction",
    "Fault",
    "FaultProxy",
    "FrameFaults",
    "FrameFilter",
    "ProxiedConnection",
    "ProxyStats",
    "build_frame",
    "chaos",
    "play",
]
