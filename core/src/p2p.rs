//! Bitcoin's P2P messages (the subset ChainCore speaks) and their framing codec (feature
//! `p2p`), kept in the library, as rust-bitcoin keeps `p2p::message`, so that the fuzz targets
//! reach the very decoder a peer reaches.
//!
//! Frame: `magic (4) | command (12, NUL-padded ASCII) | length (u32 LE) | checksum (4) |
//! payload`, where the checksum is the first 4 bytes of SHA-256d(payload). The decoder checks
//! magic, length (at most [`MAX_HANDSHAKE_MESSAGE`] until the handshake completes, then
//! [`MAX_MESSAGE`]) and checksum before a payload is parsed. Compact block payloads
//! (BIP152) and short IDs are in [`compact`].

pub mod compact;

use std::io::Write;

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::block::Header;
use crate::encode::{self, deserialize, CompactSize, Decodable, Encodable};
use crate::hash::sha256d;
use crate::{Block, BlockHash, Transaction};
use compact::{BlockTxn, CompactBlock, GetBlockTxn, SendCmpct};

/// Largest message payload after the handshake.
pub const MAX_MESSAGE: usize = 4_000_000;
/// Largest message payload before the handshake completes.
pub const MAX_HANDSHAKE_MESSAGE: usize = 1_024;
/// Most headers in one `headers` message.
pub const MAX_HEADERS: usize = 2_000;
/// Most entries in one `inv`, `getdata` or `notfound`.
pub const MAX_INV: usize = 50_000;
/// Most hashes in a block locator.
pub const MAX_LOCATOR: usize = 101;
/// Most addresses in one `addr`.
pub const MAX_ADDR: usize = 1_000;
/// Longest user agent in a `version`, in bytes (Bitcoin Core's `MAX_SUBVERSION_LENGTH`).
pub const MAX_USER_AGENT: usize = 256;
/// Our protocol version.
pub const PROTOCOL_VERSION: i32 = 70_016;

/// Inventory type of a transaction.
pub const INV_TX: u32 = 1;
/// Inventory type of a block.
pub const INV_BLOCK: u32 = 2;
/// Inventory type asking for a block as a compact block (`MSG_CMPCT_BLOCK`, BIP152; only in
/// `getdata`).
pub const INV_CMPCT_BLOCK: u32 = 4;

/// Why bytes from a peer are not a valid message. Every variant is a protocol violation.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Wrong network magic.
    #[error("bad magic {0:02x?}")]
    Magic([u8; 4]),
    /// Declared payload larger than allowed now.
    #[error("message of {0} bytes exceeds the limit")]
    Oversized(usize),
    /// Checksum does not match the payload.
    #[error("bad checksum")]
    Checksum,
    /// The command is not ASCII or not NUL-padded.
    #[error("malformed command")]
    Command,
    /// The payload does not decode.
    #[error("bad {command} payload: {source}")]
    Payload {
        /// The command.
        command: String,
        /// The decoding error.
        source: encode::Error,
    },
    /// A list longer than the protocol allows.
    #[error("{0} has too many entries")]
    TooMany(&'static str),
}

/// An inventory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Inv {
    /// [`INV_TX`] or [`INV_BLOCK`] (others are ignored).
    pub kind: u32,
    /// Txid or block hash bytes.
    pub hash: [u8; 32],
}

/// The `version` handshake message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// Protocol version.
    pub version: i32,
    /// Service bits (we set none).
    pub services: u64,
    /// Sender's clock.
    pub timestamp: i64,
    /// Random per-connection nonce, to detect connecting to ourselves.
    pub nonce: u64,
    /// Software name, e.g. `/chaincore:0.1.0/`. A peer's is decoded as Bitcoin Core shows it
    /// (`cleanSubVer`): at most [`MAX_USER_AGENT`] bytes, of which only letters, digits and
    /// ` .,;-_/:?@()` are kept.
    pub user_agent: String,
    /// Sender's best height.
    pub start_height: i32,
    /// The address the sender sees the receiver at (`addr_recv`; `None` when zeroed).
    pub addr_recv: Option<std::net::SocketAddr>,
    /// Whether the sender wants transactions announced (absent in a message means yes).
    pub relay: bool,
    /// Sender's genesis hash: our optional field after Bitcoin's (Bitcoin nodes ignore it and
    /// do not send it). When present and different, the peer is on another chain.
    pub genesis: Option<BlockHash>,
}

/// Handshake-time feature messages a peer advertising protocol 70016 may send between
/// `version` and `verack` (BIP339 `wtxidrelay`, BIP155 `sendaddrv2`, BIP330 `sendtxrcncl`);
/// accepted there and ignored, as Bitcoin Core accepts them.
pub const HANDSHAKE_FEATURES: [&str; 3] = ["wtxidrelay", "sendaddrv2", "sendtxrcncl"];

/// Writes a `version` network address without time: services, IPv6 (or IPv4-mapped), port
/// big-endian; all zero for `None`.
fn encode_net_addr<W: std::io::Write + ?Sized>(
    w: &mut W,
    addr: Option<std::net::SocketAddr>,
) -> std::io::Result<usize> {
    let (ip, port) = match addr {
        Some(a) => (
            match a.ip() {
                std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                std::net::IpAddr::V6(v6) => v6,
            },
            a.port(),
        ),
        None => (std::net::Ipv6Addr::UNSPECIFIED, 0),
    };
    Ok(
        0u64.consensus_encode(w)? + ip.octets().consensus_encode(w)? + {
            w.write_all(&port.to_be_bytes())?;
            2
        },
    )
}

/// Reads a `version` network address; `None` for an unspecified address or port 0.
fn decode_net_addr<R: std::io::Read + ?Sized>(
    r: &mut R,
) -> Result<Option<std::net::SocketAddr>, encode::Error> {
    u64::consensus_decode(r)?; // services
    let ip = std::net::Ipv6Addr::from(<[u8; 16]>::consensus_decode(r)?);
    let port = u16::from_be_bytes(<[u8; 2]>::consensus_decode(r)?);
    let ip = ip
        .to_ipv4_mapped()
        .map_or(std::net::IpAddr::V6(ip), std::net::IpAddr::V4);
    Ok((port != 0 && !ip.is_unspecified()).then(|| std::net::SocketAddr::new(ip, port)))
}

/// A P2P message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Handshake opener.
    Version(Version),
    /// Handshake acknowledgement.
    Verack,
    /// Keepalive request.
    Ping(u64),
    /// Keepalive answer.
    Pong(u64),
    /// Ask for addresses.
    GetAddr,
    /// Known peer addresses (Bitcoin's `addr` entries: time, services, IPv6 or mapped IPv4,
    /// port).
    Addr(Vec<std::net::SocketAddr>),
    /// Announce inventory.
    Inv(Vec<Inv>),
    /// Request inventory.
    GetData(Vec<Inv>),
    /// Requested inventory we do not have.
    NotFound(Vec<Inv>),
    /// Ask for headers after the locator.
    GetHeaders {
        /// Protocol version.
        version: u32,
        /// Block locator, newest first.
        locator: Vec<BlockHash>,
        /// Stop hash (zero: as many as allowed).
        stop: BlockHash,
    },
    /// Headers (each followed by a zero transaction count, as in Bitcoin).
    Headers(Vec<Header>),
    /// A block.
    Block(Block),
    /// A transaction.
    Tx(Transaction),
    /// Prefer `headers` to `inv` for new blocks.
    SendHeaders,
    /// BIP152: how the sender wants new blocks announced as compact blocks.
    SendCmpct(SendCmpct),
    /// BIP152: a block as header, short IDs and prefilled transactions.
    CmpctBlock(Box<CompactBlock>),
    /// BIP152: ask for transactions of a block by index.
    GetBlockTxn(GetBlockTxn),
    /// BIP152: the transactions a `getblocktxn` asked for.
    BlockTxn(BlockTxn),
    /// Ask for the inventory of the peer's mempool (BIP35); empty payload.
    MemPool,
    /// A command we do not know (ignored).
    Unknown(String),
}

impl Message {
    /// The 12-byte command name.
    pub fn command(&self) -> &str {
        match self {
            Message::Unknown(c) => c,
            known => known.known_command().unwrap_or_default(),
        }
    }

    /// The command name of a message this codec knows; `None` for [`Message::Unknown`].
    pub fn known_command(&self) -> Option<&'static str> {
        Some(match self {
            Message::Version(_) => "version",
            Message::Verack => "verack",
            Message::Ping(_) => "ping",
            Message::Pong(_) => "pong",
            Message::GetAddr => "getaddr",
            Message::Addr(_) => "addr",
            Message::Inv(_) => "inv",
            Message::GetData(_) => "getdata",
            Message::NotFound(_) => "notfound",
            Message::GetHeaders { .. } => "getheaders",
            Message::Headers(_) => "headers",
            Message::Block(_) => "block",
            Message::Tx(_) => "tx",
            Message::SendHeaders => "sendheaders",
            Message::SendCmpct(_) => "sendcmpct",
            Message::CmpctBlock(_) => "cmpctblock",
            Message::GetBlockTxn(_) => "getblocktxn",
            Message::BlockTxn(_) => "blocktxn",
            Message::MemPool => "mempool",
            Message::Unknown(_) => return None,
        })
    }

    fn payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let w = &mut out;
        let r: std::io::Result<usize> = match self {
            Message::Version(v) => (|| {
                // Bitcoin's layout (addr_from left empty), then our genesis hash if set:
                // Bitcoin nodes ignore bytes after `relay`.
                let mut n = v.version.consensus_encode(w)?
                    + v.services.consensus_encode(w)?
                    + v.timestamp.consensus_encode(w)?
                    + encode_net_addr(w, v.addr_recv)?
                    + encode_net_addr(w, None)?
                    + v.nonce.consensus_encode(w)?
                    + encode::write_bytes(w, v.user_agent.as_bytes())?
                    + v.start_height.consensus_encode(w)?
                    + v.relay.consensus_encode(w)?;
                if let Some(g) = v.genesis {
                    n += g.consensus_encode(w)?;
                }
                Ok(n)
            })(),
            Message::Verack
            | Message::GetAddr
            | Message::SendHeaders
            | Message::MemPool
            | Message::Unknown(_) => Ok(0),
            Message::Ping(n) | Message::Pong(n) => n.consensus_encode(w),
            Message::Addr(addrs) => (|| {
                let mut n = CompactSize(addrs.len() as u64).consensus_encode(w)?;
                for a in addrs {
                    let ip = match a.ip() {
                        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                        std::net::IpAddr::V6(v6) => v6,
                    };
                    n += 0u32.consensus_encode(w)?
                        + 0u64.consensus_encode(w)?
                        + ip.octets().consensus_encode(w)?;
                    w.write_all(&a.port().to_be_bytes())?;
                    n += 2;
                }
                Ok(n)
            })(),
            Message::Inv(items) | Message::GetData(items) | Message::NotFound(items) => (|| {
                let mut n = CompactSize(items.len() as u64).consensus_encode(w)?;
                for i in items {
                    n += i.kind.consensus_encode(w)? + i.hash.consensus_encode(w)?;
                }
                Ok(n)
            })(
            ),
            Message::GetHeaders {
                version,
                locator,
                stop,
            } => (|| {
                Ok(version.consensus_encode(w)?
                    + locator.consensus_encode(w)?
                    + stop.consensus_encode(w)?)
            })(),
            Message::Headers(hs) => (|| {
                let mut n = CompactSize(hs.len() as u64).consensus_encode(w)?;
                for h in hs {
                    n += h.consensus_encode(w)? + CompactSize(0).consensus_encode(w)?;
                }
                Ok(n)
            })(),
            Message::Block(b) => b.consensus_encode(w),
            Message::Tx(t) => t.consensus_encode(w),
            Message::SendCmpct(m) => m.consensus_encode(w),
            Message::CmpctBlock(m) => m.consensus_encode(w),
            Message::GetBlockTxn(m) => m.consensus_encode(w),
            Message::BlockTxn(m) => m.consensus_encode(w),
        };
        r.expect("writing to a Vec cannot fail");
        out
    }

    fn parse(command: &str, payload: &[u8]) -> Result<Message, ProtocolError> {
        let bad = |source| ProtocolError::Payload {
            command: command.to_string(),
            source,
        };
        let r = &mut &payload[..];
        let msg = match command {
            "version" => {
                let version = i32::consensus_decode(r).map_err(bad)?;
                let services = u64::consensus_decode(r).map_err(bad)?;
                let timestamp = i64::consensus_decode(r).map_err(bad)?;
                let addr_recv = decode_net_addr(r).map_err(bad)?;
                decode_net_addr(r).map_err(bad)?; // addr_from: unused, as in Core
                let nonce = u64::consensus_decode(r).map_err(bad)?;
                let agent = encode::read_bytes(r).map_err(bad)?;
                if agent.len() > MAX_USER_AGENT {
                    return Err(ProtocolError::TooMany("user agent"));
                }
                let start_height = i32::consensus_decode(r).map_err(bad)?;
                // BIP37's `relay` is optional (absent: relay), and so is our genesis hash;
                // anything after them is ignored, as Bitcoin Core ignores it.
                let relay = match r.first() {
                    None => true,
                    Some(_) => bool::consensus_decode(r).map_err(bad)?,
                };
                let genesis = if r.len() >= 32 {
                    Some(BlockHash::consensus_decode(r).map_err(bad)?)
                } else {
                    None
                };
                return Ok(Message::Version(Version {
                    version,
                    services,
                    timestamp,
                    nonce,
                    user_agent: agent
                        .into_iter()
                        .filter(|&b| b.is_ascii_alphanumeric() || b" .,;-_/:?@()".contains(&b))
                        .map(char::from)
                        .collect(),
                    start_height,
                    addr_recv,
                    relay,
                    genesis,
                }));
            }
            "verack" => Message::Verack,
            "getaddr" => Message::GetAddr,
            "sendheaders" => Message::SendHeaders,
            "mempool" => Message::MemPool,
            "ping" => Message::Ping(u64::consensus_decode(r).map_err(bad)?),
            "pong" => Message::Pong(u64::consensus_decode(r).map_err(bad)?),
            "addr" => {
                let n = encode::read_len(r).map_err(bad)?;
                if n > MAX_ADDR {
                    return Err(ProtocolError::TooMany("addr"));
                }
                let mut addrs = Vec::with_capacity(n);
                for _ in 0..n {
                    u32::consensus_decode(r).map_err(bad)?; // time
                    u64::consensus_decode(r).map_err(bad)?; // services
                    let ip =
                        std::net::Ipv6Addr::from(<[u8; 16]>::consensus_decode(r).map_err(bad)?);
                    let port = u16::from_be_bytes(<[u8; 2]>::consensus_decode(r).map_err(bad)?);
                    let ip = ip
                        .to_ipv4_mapped()
                        .map_or(std::net::IpAddr::V6(ip), std::net::IpAddr::V4);
                    addrs.push(std::net::SocketAddr::new(ip, port));
                }
                Message::Addr(addrs)
            }
            "inv" | "getdata" | "notfound" => {
                let n = encode::read_len(r).map_err(bad)?;
                if n > MAX_INV {
                    return Err(ProtocolError::TooMany("inv"));
                }
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(Inv {
                        kind: u32::consensus_decode(r).map_err(bad)?,
                        hash: <[u8; 32]>::consensus_decode(r).map_err(bad)?,
                    });
                }
                match command {
                    "inv" => Message::Inv(items),
                    "getdata" => Message::GetData(items),
                    _ => Message::NotFound(items),
                }
            }
            "getheaders" => {
                let version = u32::consensus_decode(r).map_err(bad)?;
                let n = encode::read_len(r).map_err(bad)?;
                if n > MAX_LOCATOR {
                    return Err(ProtocolError::TooMany("locator"));
                }
                let mut locator = Vec::with_capacity(n);
                for _ in 0..n {
                    locator.push(BlockHash::consensus_decode(r).map_err(bad)?);
                }
                Message::GetHeaders {
                    version,
                    locator,
                    stop: BlockHash::consensus_decode(r).map_err(bad)?,
                }
            }
            "headers" => {
                let n = encode::read_len(r).map_err(bad)?;
                if n > MAX_HEADERS {
                    return Err(ProtocolError::TooMany("headers"));
                }
                let mut hs = Vec::with_capacity(n);
                for _ in 0..n {
                    hs.push(Header::consensus_decode(r).map_err(bad)?);
                    if CompactSize::consensus_decode(r).map_err(bad)?.0 != 0 {
                        return Err(bad(encode::Error::Invalid("headers carry no transactions")));
                    }
                }
                Message::Headers(hs)
            }
            "block" => return deserialize(payload).map(Message::Block).map_err(bad),
            "tx" => return deserialize(payload).map(Message::Tx).map_err(bad),
            "sendcmpct" => return deserialize(payload).map(Message::SendCmpct).map_err(bad),
            "cmpctblock" => {
                return deserialize(payload)
                    .map(|c| Message::CmpctBlock(Box::new(c)))
                    .map_err(bad)
            }
            "getblocktxn" => return deserialize(payload).map(Message::GetBlockTxn).map_err(bad),
            "blocktxn" => return deserialize(payload).map(Message::BlockTxn).map_err(bad),
            other => return Ok(Message::Unknown(other.to_string())),
        };
        if !r.is_empty() {
            return Err(bad(encode::Error::TrailingBytes(r.len())));
        }
        Ok(msg)
    }
}

/// Frames messages for one network.
pub struct Codec {
    magic: [u8; 4],
    /// Set once the handshake is done: larger messages are allowed from then on.
    pub handshake_done: bool,
}

impl Codec {
    /// A codec for the network with `magic`.
    pub fn new(magic: [u8; 4]) -> Codec {
        Codec {
            magic,
            handshake_done: false,
        }
    }
}

impl Decoder for Codec {
    type Item = Message;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, ProtocolError> {
        if src.len() < 24 {
            return Ok(None);
        }
        let magic: [u8; 4] = src[..4].try_into().expect("4 bytes");
        if magic != self.magic {
            return Err(ProtocolError::Magic(magic));
        }
        let len = u32::from_le_bytes(src[16..20].try_into().expect("4 bytes")) as usize;
        let limit = if self.handshake_done {
            MAX_MESSAGE
        } else {
            MAX_HANDSHAKE_MESSAGE
        };
        if len > limit {
            return Err(ProtocolError::Oversized(len));
        }
        if src.len() < 24 + len {
            src.reserve(24 + len - src.len());
            return Ok(None);
        }
        let raw_command = &src[4..16];
        let name_len = raw_command.iter().position(|&b| b == 0).unwrap_or(12);
        if !raw_command[..name_len].iter().all(|b| b.is_ascii_graphic())
            || raw_command[name_len..].iter().any(|&b| b != 0)
        {
            return Err(ProtocolError::Command);
        }
        let command = String::from_utf8_lossy(&raw_command[..name_len]).into_owned();
        let checksum: [u8; 4] = src[20..24].try_into().expect("4 bytes");
        src.advance(24);
        let payload = src.split_to(len);
        if sha256d(&payload)[..4] != checksum {
            return Err(ProtocolError::Checksum);
        }
        Message::parse(&command, &payload).map(Some)
    }
}

impl Encoder<Message> for Codec {
    type Error = ProtocolError;

    fn encode(&mut self, msg: Message, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let payload = msg.payload();
        let mut command = [0u8; 12];
        let name = msg.command().as_bytes();
        command[..name.len().min(12)].copy_from_slice(&name[..name.len().min(12)]);
        dst.reserve(24 + payload.len());
        dst.put_slice(&self.magic);
        dst.put_slice(&command);
        dst.put_u32_le(payload.len() as u32);
        dst.put_slice(&sha256d(&payload)[..4]);
        dst.writer().write_all(&payload)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(msg: Message) {
        let mut codec = Codec::new([1, 2, 3, 4]);
        codec.handshake_done = true;
        let mut buf = BytesMut::new();
        codec.encode(msg.clone(), &mut buf).unwrap();
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(msg));
        assert!(buf.is_empty());
    }

    #[test]
    fn messages_round_trip() {
        round_trip(Message::Verack);
        round_trip(Message::Ping(7));
        round_trip(Message::Inv(vec![Inv {
            kind: INV_BLOCK,
            hash: [9; 32],
        }]));
        round_trip(Message::GetHeaders {
            version: 1,
            locator: vec![BlockHash([1; 32])],
            stop: BlockHash::ZERO,
        });
        round_trip(Message::Headers(vec![Header::default(); 3]));
        round_trip(Message::Addr(vec!["127.0.0.1:8333".parse().unwrap()]));
        round_trip(Message::Block(
            crate::Network::Regtest.genesis_block().clone(),
        ));
        round_trip(Message::Version(Version {
            version: PROTOCOL_VERSION,
            services: 0,
            timestamp: 5,
            nonce: 9,
            user_agent: "/x/".into(),
            start_height: 3,
            addr_recv: Some("10.1.2.3:18744".parse().unwrap()),
            relay: true,
            genesis: Some(BlockHash([2; 32])),
        }));
        let genesis = crate::Network::Regtest.genesis_block();
        round_trip(Message::SendCmpct(SendCmpct {
            high_bandwidth: false,
            version: compact::COMPACT_VERSION,
        }));
        round_trip(Message::CmpctBlock(Box::new(CompactBlock::from_block(
            genesis, 5,
        ))));
        round_trip(Message::GetBlockTxn(GetBlockTxn {
            block_hash: genesis.block_hash(),
            indexes: vec![0, 3],
        }));
        round_trip(Message::BlockTxn(BlockTxn {
            block_hash: genesis.block_hash(),
            txs: genesis.txdata.clone(),
        }));
    }

    /// A `version` as Bitcoin Core 27 sends it (python-bitcoinlib's and Core's test framework
    /// layout): no trailing genesis hash, and one without the `relay` byte either.
    #[test]
    fn a_plain_bitcoin_version_decodes() {
        let mut payload = Vec::new();
        payload.extend_from_slice(&70_016i32.to_le_bytes());
        payload.extend_from_slice(&1033u64.to_le_bytes());
        payload.extend_from_slice(&1_700_000_000i64.to_le_bytes());
        // addr_recv 127.0.0.1:18744, addr_from zero
        payload.extend_from_slice(&0u64.to_le_bytes());
        payload.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);
        payload.extend_from_slice(&18744u16.to_be_bytes());
        payload.extend_from_slice(&[0; 26]);
        payload.extend_from_slice(&7u64.to_le_bytes());
        payload.push(16);
        payload.extend_from_slice(b"/Satoshi:27.0.0/");
        payload.extend_from_slice(&100i32.to_le_bytes());
        let without_relay = payload.clone();
        payload.push(0);
        for (bytes, relay) in [(payload, false), (without_relay, true)] {
            let Message::Version(v) = Message::parse("version", &bytes).unwrap() else {
                panic!("not a version");
            };
            assert_eq!(v.genesis, None);
            assert_eq!(v.relay, relay);
            assert_eq!(v.addr_recv, Some("127.0.0.1:18744".parse().unwrap()));
            assert_eq!(v.user_agent, "/Satoshi:27.0.0/");
            assert_eq!(v.start_height, 100);
        }
    }

    /// Found by the `p2p_message` fuzz target (its input is in fuzz/regressions/p2p_message/):
    /// a user agent within the 256-byte limit but not UTF-8 was decoded lossily into up to
    /// three times as many bytes, so the `version` we had accepted re-encoded to one we refuse
    /// (`TooMany("user agent")`), and control characters reached `getpeerinfo`'s `subver`.
    /// Only Bitcoin Core's safe characters are kept now, as in its `cleanSubVer`.
    #[test]
    fn user_agents_keep_only_safe_characters() {
        let ours = Message::Version(Version {
            version: PROTOCOL_VERSION,
            services: 0,
            timestamp: 0,
            nonce: 1,
            user_agent: String::new(),
            start_height: 0,
            addr_recv: None,
            relay: true,
            genesis: None,
        });
        let empty_agent = ours.payload();
        let agent: Vec<u8> = [&[0xe3u8; 200][..], b"/x:1.0\n\x1b[31m (y)/"].concat();
        // Under the limit, and short enough for a one-byte length at offset 80 (where an empty
        // agent's is), yet over it once each 0xe3 is decoded as U+FFFD.
        assert!(agent.len() < 0xfd && 3 * agent.len() > MAX_USER_AGENT);
        let payload = [
            &empty_agent[..80],
            &[agent.len() as u8],
            &agent,
            &empty_agent[81..],
        ]
        .concat();
        let Message::Version(v) = Message::parse("version", &payload).unwrap() else {
            panic!("not a version");
        };
        assert_eq!(v.user_agent, "/x:1.031m (y)/");
        let msg = Message::Version(v);
        assert_eq!(Message::parse("version", &msg.payload()).unwrap(), msg);
    }

    #[test]
    fn framing_errors_are_caught_before_parsing() {
        let mut codec = Codec::new([1, 2, 3, 4]);
        let mut buf = BytesMut::new();
        codec.encode(Message::Ping(1), &mut buf).unwrap();
        let mut bad_magic = buf.clone();
        bad_magic[0] = 0;
        assert!(matches!(
            codec.decode(&mut bad_magic),
            Err(ProtocolError::Magic(_))
        ));
        let mut bad_sum = buf.clone();
        bad_sum[20] ^= 1;
        assert!(matches!(
            codec.decode(&mut bad_sum),
            Err(ProtocolError::Checksum)
        ));
        let mut big = buf.clone();
        big[16..20].copy_from_slice(&2_000u32.to_le_bytes());
        assert!(
            matches!(codec.decode(&mut big), Err(ProtocolError::Oversized(2000))),
            "1,024 before the handshake"
        );
        let mut partial = buf.split_to(10);
        assert!(codec.decode(&mut partial).unwrap().is_none());
    }

    #[test]
    fn arbitrary_payloads_never_panic() {
        use proptest::prelude::*;
        proptest!(|(cmd in 0usize..19, payload in proptest::collection::vec(any::<u8>(), 0..300))| {
            let commands = ["version", "verack", "ping", "pong", "getaddr", "addr", "inv", "getdata",
                "notfound", "getheaders", "headers", "block", "tx", "sendheaders", "mempool",
                "sendcmpct", "cmpctblock", "getblocktxn", "blocktxn"];
            let _ = Message::parse(commands[cmd], &payload);
        });
    }
}
