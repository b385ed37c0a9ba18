"""A plain-Bitcoin peer built from python-bitcoinlib (not our code) talking to a node.

Usage: bitcoinlib_peer.py PORT MAGIC_HEX GENESIS_HEX

Connects to 127.0.0.1:PORT, sends python-bitcoinlib's own `version` (protocol 60002: no
relay byte, no genesis hash) and `verack`, waits for the node's `verack`, asks for headers
from genesis and for the first block, and prints one JSON line: the protocol version and user
agent the node sent, how many headers came, and block 1's hash and merkle root as
python-bitcoinlib computes them from the bytes the node sent.
"""

import json
import socket
import sys

import bitcoin
from bitcoin.core import lx, b2lx
from bitcoin.messages import (
    MsgSerializable,
    msg_getdata,
    msg_getheaders,
    msg_verack,
    msg_version,
)
from bitcoin.net import CInv


def main():
    port, magic, genesis = int(sys.argv[1]), bytes.fromhex(sys.argv[2]), sys.argv[3]
    bitcoin.params.MESSAGE_START = magic
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    stream = sock.makefile("rb")

    def send(msg):
        sock.sendall(msg.to_bytes())

    def recv():
        while True:
            msg = MsgSerializable.stream_deserialize(stream)
            if msg is not None:
                return msg

    send(msg_version())
    send(msg_verack())
    their_version = None
    while True:
        msg = recv()
        if msg.command == b"version":
            their_version = msg
        if msg.command == b"verack":
            break
    get = msg_getheaders()
    get.locator.vHave = [lx(genesis)]
    send(get)
    while True:
        msg = recv()
        if msg.command == b"headers":
            headers = msg.headers
            break
    inv = CInv()
    inv.type = 2
    inv.hash = headers[0].GetHash()
    ask = msg_getdata()
    ask.inv = [inv]
    send(ask)
    while True:
        msg = recv()
        if msg.command == b"block":
            block = msg.block
            break
    print(
        json.dumps(
            {
                "version": their_version.nVersion,
                "user_agent": their_version.strSubVer.decode(),
                "headers": len(headers),
                "block1_hash": b2lx(block.GetHash()),
                "block1_merkle_ok": block.calc_merkle_root() == block.hashMerkleRoot,
                "block1_txs": len(block.vtx),
            }
        )
    )


if __name__ == "__main__":
    main()
