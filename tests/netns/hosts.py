"""Separate hosts for a broker group: one network namespace per machine, wired to a switch.

    root ns (the test) ─┐
    ha-XXXX-h0 ─────────┤  bridge in ha-XXXX-sw, 10.213.N.0/24
    ha-XXXX-h1 ─────────┤
    ...                 ┘

``partition(host)`` takes the host's cable out of the switch (its link goes down: packets are
dropped, nothing is refused), ``heal(host)`` plugs it back.  Every namespace and link is
removed in ``close()`` whatever happened.  ``available()`` says whether this machine can do it
(root and a working ``ip netns``); otherwise callers use the loopback variant.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import time

import attrs


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=20)


def available() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"ha-probe{os.getpid() % 10000}"
    # A few tries: two xdist workers probe at the same moment at collection, and on a fresh
    # machine their first `ip netns add` race to set up /run/netns; the loser failed once and
    # its worker skipped the partition tests (an unexplained fourth skip in CI runs).
    for attempt in range(5):
        try:
            ok = _ip("netns", "add", probe, check=False).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False
        if ok:
            _ip("netns", "del", probe, check=False)
            return True
        time.sleep(0.2 * (attempt + 1))
    return False


def _free_subnet() -> int:
    """A 10.213.N.0/24 no interface of this machine uses: two test processes (xdist workers,
    or two engineers' runs) build networks at the same time."""
    shown = _ip("-o", "-4", "addr", "show", check=False).stdout
    taken = {int(n) for n in re.findall(r"inet 10\.213\.(\d+)\.", shown)}
    free = [n for n in range(1, 250) if n not in taken]
    return random.choice(free or list(range(1, 250)))


@attrs.define
class Network:
    tag: str = attrs.field(factory=lambda: f"ha-{random.randrange(16**4):04x}")
    subnet: int = attrs.field(factory=lambda: _free_subnet())
    hosts: dict[str, str] = attrs.field(factory=dict)  # name -> namespace
    addrs: dict[str, str] = attrs.field(factory=dict)  # name -> IP
    _created: list[str] = attrs.field(factory=list)
    _root_link: str | None = None

    @property
    def switch(self) -> str:
        return f"{self.tag}-sw"

    def open(self) -> Network:
        _ip("netns", "add", self.switch)
        self._created.append(self.switch)
        self._sw("link", "add", "br0", "type", "bridge")
        self._sw("link", "set", "br0", "up")
        # the test itself (root namespace) is host .1
        root, peer = f"{self.tag}-r", f"{self.tag}-rp"
        _ip("link", "add", root, "type", "veth", "peer", "name", peer)
        self._root_link = root
        _ip("link", "set", peer, "netns", self.switch)
        self._sw("link", "set", peer, "master", "br0")
        self._sw("link", "set", peer, "up")
        _ip("addr", "add", f"10.213.{self.subnet}.1/24", "dev", root)
        _ip("link", "set", root, "up")
        return self

    def _sw(self, *args: str) -> None:
        _ip("-n", self.switch, *args)

    def add_host(self, name: str) -> str:
        """A new machine; returns its IP."""
        n = len(self.hosts)
        ns = f"{self.tag}-h{n}"
        _ip("netns", "add", ns)
        self._created.append(ns)
        inside, outside = f"{self.tag}-i{n}", f"{self.tag}-o{n}"
        _ip("link", "add", inside, "type", "veth", "peer", "name", outside)
        _ip("link", "set", inside, "netns", ns)
        _ip("link", "set", outside, "netns", self.switch)
        self._sw("link", "set", outside, "master", "br0")
        self._sw("link", "set", outside, "up")
        addr = f"10.213.{self.subnet}.{n + 2}"
        _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", inside)
        _ip("-n", ns, "link", "set", inside, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        self.hosts[name], self.addrs[name] = ns, addr
        return addr

    def exec_prefix(self, name: str) -> list[str]:
        return ["ip", "netns", "exec", self.hosts[name]]

    def _cable(self, name: str) -> str:
        return f"{self.tag}-o{list(self.hosts).index(name)}"

    def partition(self, name: str) -> None:
        self._sw("link", "set", self._cable(name), "down")

    def heal(self, name: str) -> None:
        self._sw("link", "set", self._cable(name), "up")

    def close(self) -> None:
        if self._root_link is not None:
            _ip("link", "del", self._root_link, check=False)
            self._root_link = None
        for ns in reversed(self._created):
            _ip("netns", "del", ns, check=False)
        self._created.clear()
