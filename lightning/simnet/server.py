"""Start the simulated network: one grpc.aio server per node, the clocks, the control API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from lightning.grpc import invoices_pb2_grpc, lightning_pb2_grpc, router_pb2_grpc
from lightning.simnet.control import ControlServer
from lightning.simnet.credentials import ensure_node_files, node_key
from lightning.simnet.lightning_service import LightningService
from lightning.simnet.model import SimError, SimNode
from lightning.simnet.network import Network
from lightning.simnet.persistence import (
    STATE_FILE,
    StateRefused,
    read_state,
    restore,
    save_state,
    snapshot,
    state_problems,
)
from lightning.simnet.subservers import InvoicesService, RouterService

logger = logging.getLogger(__name__)
EXPIRY_SWEEP_SECONDS = 0.25
SERVER_OPTIONS = (
    # Refuse to share a port with another process (gRPC turns SO_REUSEPORT on by default).
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
)


@dataclass
class SimnetConfig:
    directory: Path
    node_names: list[str]
    base_port: int = 0  # 0: any free port
    control_port: int = 0
    block_interval: float = 600.0  # 0: blocks only when mined through the control API
    fee_base_msat: int = 1000
    fee_ppm: int = 1000
    balance_sats: int = 10_000_000
    host: str = "127.0.0.1"  # the gRPC interface (0.0.0.0 in a container the node reaches by name)
    tls_extra_domains: tuple[str, ...] = ()
    # The network state is saved to DIR/simnet-state.json when it changed, at most this often (and
    # at a clean stop), and loaded at start: a killed simnet comes back with its state. 0: memory only.
    state_interval: float = 0.25


class Simnet:
    def __init__(self, config: SimnetConfig) -> None:
        self.config = config
        self.network = Network(fee_base_msat=config.fee_base_msat, fee_ppm=config.fee_ppm)
        self.servers: list[grpc.aio.Server] = []
        self.control_url = ""
        self.control_port = 0
        self.state_path = config.directory / STATE_FILE
        self.resumed = False  # started from a saved state
        self._saved_changes = -1
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> dict[str, Any]:
        self.config.directory.mkdir(parents=True, exist_ok=True)
        state = read_state(self.state_path) if self.config.state_interval > 0 else None
        if state is not None and sorted(state["nodes"]) != sorted(self.config.node_names):
            raise StateRefused(
                f"{self.state_path} has nodes {sorted(state['nodes'])}, --nodes gives {sorted(self.config.node_names)}"
            )
        for index, name in enumerate(self.config.node_names):
            await self._start_node(index, name, port=state["nodes"][name]["port"] if state else 0)
        if state is not None:
            restore(self.network, state)
            problems = state_problems(self.network)
            if problems:
                await self.stop(save=False)
                raise StateRefused(f"{self.state_path} refused: " + "; ".join(problems))
            self.resumed = True
        control = await ControlServer(self._control_handlers()).start(
            state["control_port"] if state else self.config.control_port
        )
        self.control_port = control.sockets[0].getsockname()[1]
        self.control_url = f"http://127.0.0.1:{self.control_port}"
        self._control = control
        self._tasks.append(asyncio.create_task(self._expiry_loop()))
        if self.config.state_interval > 0:
            self.save()
            self._tasks.append(asyncio.create_task(self._save_loop()))
        if self.config.block_interval > 0:
            self._tasks.append(asyncio.create_task(self._block_loop()))
        return self._write_manifest()

    async def _start_node(self, index: int, name: str, *, port: int = 0) -> None:
        cert_path, macaroon_path, cert_pem, key_pem, macaroon = ensure_node_files(
            self.config.directory, name, self.config.tls_extra_domains
        )
        server = grpc.aio.server(options=SERVER_OPTIONS)
        port = port or (self.config.base_port + index if self.config.base_port else 0)  # a saved port first
        port = server.add_secure_port(f"{self.config.host}:{port}", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
        node = SimNode(
            name=name,
            key=node_key(name),
            macaroon=macaroon,
            port=port,
            balance_msat=self.config.balance_sats * 1000,
            cert_file=str(cert_path),
            macaroon_file=str(macaroon_path),
        )
        self.network.add_node(node)
        lightning_pb2_grpc.add_LightningServicer_to_server(LightningService(self.network, node), server)
        invoices_pb2_grpc.add_InvoicesServicer_to_server(InvoicesService(self.network, node), server)
        router_pb2_grpc.add_RouterServicer_to_server(RouterService(self.network, node), server)
        await server.start()
        self.servers.append(server)

    def _write_manifest(self) -> dict[str, Any]:
        manifest = {
            node.name: {
                "grpc": f"127.0.0.1:{node.port}",
                "tls_cert": node.cert_file,
                "macaroon": node.macaroon_file,
                "pubkey": node.pubkey_hex,
            }
            for node in self.network.nodes.values()
        }
        manifest["_control"] = {"url": self.control_url}
        (self.config.directory / "simnet.json").write_text(json.dumps(manifest, indent=2))
        return manifest

    async def stop(self, *, save: bool = True) -> None:
        for task in self._tasks:
            task.cancel()
        if hasattr(self, "_control"):
            self._control.close()
        await asyncio.gather(*(server.stop(grace=0.5) for server in self.servers))
        if save and self.config.state_interval > 0:
            self.save()  # after the servers stopped: the last calls' changes are in

    def _snapshot(self) -> dict[str, Any] | None:
        """The state to write if the network changed since the last snapshot, else None. Taken
        on the loop, so consistent; plain data, so it can be encoded and written in a thread."""
        if self.network.changes == self._saved_changes:
            return None
        self._saved_changes = self.network.changes
        return snapshot(self.network, control_port=self.control_port)

    def save(self) -> None:
        state = self._snapshot()
        if state is not None:
            save_state(self.state_path, state)

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.state_interval)
            state = self._snapshot()
            if state is None:
                continue
            try:  # encoding and fsync in a thread: the loop keeps serving (one write at a time)
                await asyncio.to_thread(save_state, self.state_path, state)
            except OSError:
                logger.exception("simnet: state not saved (retried at the next interval)")
                self._saved_changes = -1

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_SECONDS)
            self.network.expire_invoices()

    async def _block_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.block_interval)
            self.network.mine(1)

    # --- control API ------------------------------------------------------------------------
    def _node(self, name: str) -> SimNode:
        node = self.network.nodes.get(name)
        if node is None:
            raise SimError(f"unknown node {name!r}")
        return node

    def _control_handlers(self) -> dict[str, Any]:
        return {
            "state": self._state,
            "mine": lambda blocks=1: {"height": self.network.mine(int(blocks))},
            "offline": lambda node: self._set_online(node, False),
            "online": lambda node: self._set_online(node, True),
            "restart": self._restart,
            "fail_next_payment": self._fail_next,
            "delay": self._delay,
            "stick_next_payment": self._stick_next,
            "resolve_payment": self._resolve,
            "fees": self._fees,
            "balance": self._balance,
        }

    def _state(self) -> dict[str, Any]:
        nodes = {
            node.name: {
                "balance_msat": node.balance_msat,
                "online": node.online,
                "call_delay_s": node.call_delay_s,
                "invoices": len(node.invoices),
                "payments": len(node.payments),
                "pubkey": node.pubkey_hex,
            }
            for node in self.network.nodes.values()
        }
        return {"height": self.network.height, "nodes": nodes}

    def _set_online(self, name: str, online: bool) -> dict[str, Any]:
        self._node(name).online = online
        return {"node": name, "online": online}

    async def _restart(self, node: str, down_seconds: float = 0.0) -> dict[str, Any]:
        target = self._node(node)
        target.restart()  # every open stream of the node ends with UNAVAILABLE
        if down_seconds:
            target.online = False
            asyncio.get_running_loop().call_later(float(down_seconds), setattr, target, "online", True)
        return {"node": node, "restarted": True}

    def _delay(
        self, node: str, seconds: float = 0.0, methods: list[str] | None = None, after_effect: bool = False
    ) -> dict[str, Any]:
        target = self._node(node)
        target.call_delay_s = max(0.0, float(seconds))
        target.delay_methods = frozenset(methods or ())
        target.delay_after_effect = bool(after_effect)
        return {"node": node, "seconds": target.call_delay_s, "methods": sorted(target.delay_methods)}

    def _fail_next(self, node: str, reason: str = "FAILURE_REASON_NO_ROUTE") -> dict[str, Any]:
        from lightning.grpc import lightning_pb2

        lightning_pb2.PaymentFailureReason.Value(reason)  # reject unknown names early
        self._node(node).fail_next_payment = reason
        return {"node": node, "fail_next_payment": reason}

    def _stick_next(self, node: str) -> dict[str, Any]:
        self._node(node).stick_next_payment = True
        return {"node": node, "stick_next_payment": True}

    def _resolve(self, node: str, payment_hash: str, outcome: str = "deliver", reason: str = "") -> dict[str, Any]:
        payment = self.network.resolve_stuck(
            self._node(node), bytes.fromhex(payment_hash), outcome=outcome, reason=reason
        )
        return {"payment_hash": payment_hash, "status": payment.status}

    def _fees(self, base_msat: int, ppm: int) -> dict[str, Any]:
        self.network.fee_base_msat, self.network.fee_ppm = int(base_msat), int(ppm)
        self.network.changes += 1
        return {"base_msat": self.network.fee_base_msat, "ppm": self.network.fee_ppm}

    def _balance(self, node: str, balance_sats: int) -> dict[str, Any]:
        self.network.set_balance(self._node(node), int(balance_sats) * 1000)
        return {"node": node, "balance_msat": self._node(node).balance_msat}


async def run_simnet(config: SimnetConfig, *, ready: Callable[[str], object] = print) -> None:
    """Serve until SIGINT/SIGTERM; calls `ready(line)` with the READY line once serving."""
    simnet = Simnet(config)
    await simnet.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    manifest_path = config.directory / "simnet.json"
    resumed = f" resumed={simnet.state_path}" if simnet.resumed else ""
    ready(f"READY {manifest_path} control={simnet.control_url} nodes={','.join(config.node_names)}{resumed}")
    await stop.wait()
    await simnet.stop()
