//! What `help` says: every method's usage line (Bitcoin Core's shape: required parameters,
//! then optional ones in parentheses, string parameters quoted) and summary, by category. The
//! node registers exactly these methods; a test in the node checks the two lists agree.

/// One method as `help` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Category heading (`== Blockchain ==`).
    pub category: &'static str,
    /// Method name.
    pub name: &'static str,
    /// Usage line.
    pub usage: &'static str,
    /// What it does.
    pub summary: &'static str,
}

/// Every method, by category.
pub const METHODS: &[Usage] = &[
    Usage {
        category: "Blockchain",
        name: "getblockchaininfo",
        usage: "getblockchaininfo",
        summary: "State of the chain (Core's shape).",
    },
    Usage {
        category: "Blockchain",
        name: "getbestblockhash",
        usage: "getbestblockhash",
        summary: "Hash of the best block.",
    },
    Usage {
        category: "Blockchain",
        name: "getblockcount",
        usage: "getblockcount",
        summary: "Height of the best block.",
    },
    Usage {
        category: "Blockchain",
        name: "getblockhash",
        usage: "getblockhash height",
        summary: "Hash of the active-chain block at `height`.",
    },
    Usage {
        category: "Blockchain",
        name: "getblock",
        usage: "getblock \"blockhash\" ( verbosity )",
        summary: "A block: hex (verbosity 0), JSON with txids (1) or with decoded transactions (2).",
    },
    Usage {
        category: "Blockchain",
        name: "getblockheader",
        usage: "getblockheader \"blockhash\" ( verbose )",
        summary: "A header as JSON (`verbose` true, the default) or hex.",
    },
    Usage {
        category: "Blockchain",
        name: "getchaintips",
        usage: "getchaintips",
        summary: "Every known branch tip, highest first; always the active one.",
    },
    Usage {
        category: "Blockchain",
        name: "getchaintxstats",
        usage: "getchaintxstats ( nblocks \"blockhash\" )",
        summary: "Transaction counts and rate over the `nblocks` blocks (default: a month of blocks, at most the block's height - 1) ending at the active-chain block `blockhash` (default: the tip).",
    },
    Usage {
        category: "Blockchain",
        name: "getdifficulty",
        usage: "getdifficulty",
        summary: "Difficulty of the best block relative to `0x1d00ffff`.",
    },
    Usage {
        category: "Blockchain",
        name: "gettxout",
        usage: "gettxout \"txid\" n ( include_mempool )",
        summary: "An unspent output, or null.",
    },
    Usage {
        category: "Blockchain",
        name: "getblockstats",
        usage: "getblockstats hash_or_height",
        summary: "Statistics of one active-chain block, by hash or height: Bitcoin Core's fields except `feerate_percentiles`, the `utxo_size_inc` pair and the `stats` selection (amounts in units, sizes in bytes, fee rates in units per byte).",
    },
    Usage {
        category: "Blockchain",
        name: "gettxoutsetinfo",
        usage: "gettxoutsetinfo",
        summary: "Statistics and a hash of the UTXO set.",
    },
    Usage {
        category: "Blockchain",
        name: "getindexinfo",
        usage: "getindexinfo ( \"index_name\" )",
        summary: "The indexes that are enabled, each with whether it has taken in the chain's tip and the height it has taken in (Bitcoin Core's shape); only `index_name` if given.",
    },
    Usage {
        category: "Blockchain",
        name: "verifychain",
        usage: "verifychain ( checklevel nblocks )",
        summary: "Checks the active chain's blocks and, at level 4, that the UTXO set equals a replay.",
    },
    Usage {
        category: "Blockchain",
        name: "invalidateblock",
        usage: "invalidateblock \"blockhash\"",
        summary: "Marks a block invalid and moves off it.",
    },
    Usage {
        category: "Blockchain",
        name: "reconsiderblock",
        usage: "reconsiderblock \"blockhash\"",
        summary: "Removes the invalid mark from a block and its relatives.",
    },
    Usage {
        category: "Blockchain",
        name: "subscribenewtip",
        usage: "subscribenewtip",
        summary: "WebSocket only: pushes `{\"hash\",\"height\"}` for every new best tip.",
    },
    Usage {
        category: "Control",
        name: "uptime",
        usage: "uptime",
        summary: "Seconds since the node started.",
    },
    Usage {
        category: "Control",
        name: "stop",
        usage: "stop",
        summary: "Stops the node cleanly.",
    },
    Usage {
        category: "Control",
        name: "help",
        usage: "help ( \"command\" )",
        summary: "Lists the methods, or describes one.",
    },
    Usage {
        category: "Mempool",
        name: "getrawmempool",
        usage: "getrawmempool ( verbose )",
        summary: "Txids in the mempool, or (verbose) entries by txid.",
    },
    Usage {
        category: "Mempool",
        name: "getmempoolinfo",
        usage: "getmempoolinfo",
        summary: "Mempool size and limits.",
    },
    Usage {
        category: "Mempool",
        name: "getmempoolentry",
        usage: "getmempoolentry \"txid\"",
        summary: "One mempool entry.",
    },
    Usage {
        category: "Mempool",
        name: "estimatesmartfee",
        usage: "estimatesmartfee conf_target ( \"estimate_mode\" )",
        summary: "Bitcoin Core's fee estimate for confirmation within `conf_target` blocks: `feerate` (coins per 1,000 bytes) and `blocks`, or `errors` when the node has no data.",
    },
    Usage {
        category: "Mempool",
        name: "savemempool",
        usage: "savemempool",
        summary: "Writes the mempool to `mempool.dat` now (it is also written at shutdown and every two minutes); answers `{\"filename\": path}`.",
    },
    Usage {
        category: "Mempool",
        name: "subscribenewtx",
        usage: "subscribenewtx",
        summary: "WebSocket only: pushes the txid of every transaction accepted into the mempool.",
    },
    Usage {
        category: "Mining",
        name: "getblocktemplate",
        usage: "getblocktemplate ( template_request )",
        summary: "A BIP22 block template; with `longpollid`, waits for a change.",
    },
    Usage {
        category: "Mining",
        name: "submitblock",
        usage: "submitblock \"hexdata\" ( dummy )",
        summary: "Submits a block: null if accepted, else a reason string.",
    },
    Usage {
        category: "Mining",
        name: "getmininginfo",
        usage: "getmininginfo",
        summary: "Mining-related state.",
    },
    Usage {
        category: "Mining",
        name: "getnetworkhashps",
        usage: "getnetworkhashps ( nblocks height )",
        summary: "Estimated hashes per second over the last `nblocks` blocks (default 120).",
    },
    Usage {
        category: "Mining",
        name: "generatetoaddress",
        usage: "generatetoaddress nblocks \"address\" ( maxtries )",
        summary: "Mines `nblocks` blocks to `address` in-process; returns their hashes.",
    },
    Usage {
        category: "Network",
        name: "getpeerinfo",
        usage: "getpeerinfo",
        summary: "Connected peers (Core's shape).",
    },
    Usage {
        category: "Network",
        name: "getconnectioncount",
        usage: "getconnectioncount",
        summary: "Number of connected peers.",
    },
    Usage {
        category: "Network",
        name: "addnode",
        usage: "addnode \"node\" \"command\"",
        summary: "Connects to a peer: `add` keeps the connection, `onetry` tries once.",
    },
    Usage {
        category: "Network",
        name: "getnetworkinfo",
        usage: "getnetworkinfo",
        summary: "Node and network state (Core's shape).",
    },
    Usage {
        category: "Network",
        name: "disconnectnode",
        usage: "disconnectnode \"address\"",
        summary: "Drops the connection to a peer given as `IP:PORT`.",
    },
    Usage {
        category: "Network",
        name: "getnodeaddresses",
        usage: "getnodeaddresses ( count )",
        summary: "Known peer addresses.",
    },
    Usage {
        category: "Network",
        name: "setban",
        usage: "setban \"subnet\" \"command\" ( bantime )",
        summary: "Bans (`add`, optional seconds, default 24 h) or unbans (`remove`) an IP.",
    },
    Usage {
        category: "Network",
        name: "listbanned",
        usage: "listbanned",
        summary: "Current bans.",
    },
    Usage {
        category: "Network",
        name: "clearbanned",
        usage: "clearbanned",
        summary: "Lifts every ban.",
    },
    Usage {
        category: "Network",
        name: "getnettotals",
        usage: "getnettotals",
        summary: "Bytes received from and sent to peers since the node started, and the time (Core's shape, without `uploadtarget`).",
    },
    Usage {
        category: "Network",
        name: "ping",
        usage: "ping",
        summary: "Sends a ping to every peer.",
    },
    Usage {
        category: "Rawtransactions",
        name: "sendrawtransaction",
        usage: "sendrawtransaction \"hexstring\" ( maxfeerate )",
        summary: "Validates and adds a transaction to the mempool; returns its txid.",
    },
    Usage {
        category: "Rawtransactions",
        name: "testmempoolaccept",
        usage: "testmempoolaccept [\"rawtxs\",...] ( maxfeerate )",
        summary: "Whether transactions would be accepted, without adding them.",
    },
    Usage {
        category: "Rawtransactions",
        name: "getrawtransaction",
        usage: "getrawtransaction \"txid\" ( verbose \"blockhash\" )",
        summary: "A mempool or active-chain transaction, as hex or JSON.",
    },
    Usage {
        category: "Rawtransactions",
        name: "decoderawtransaction",
        usage: "decoderawtransaction \"hexstring\"",
        summary: "Decodes a transaction's hex.",
    },
    Usage {
        category: "Addressindex",
        name: "getaddressbalance",
        usage: "getaddressbalance addresses",
        summary: "Confirmed and unconfirmed balance of addresses (`{\"addresses\": [...]}` or one address).",
    },
    Usage {
        category: "Addressindex",
        name: "getaddressutxos",
        usage: "getaddressutxos addresses",
        summary: "Unspent outputs of addresses, confirmed and in the mempool.",
    },
    Usage {
        category: "Addressindex",
        name: "getaddresstxids",
        usage: "getaddresstxids addresses",
        summary: "Txids touching addresses, oldest first, then mempool ones.",
    },
];

/// One parameter as a usage line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// Its name.
    pub name: String,
    /// Quoted in the usage (`"blockhash"`): a string, never read as JSON by the cli.
    pub string: bool,
    /// Inside the parentheses: may be left out.
    pub optional: bool,
}

impl Usage {
    /// The parameters, in order, read from the usage line: the words after the method's name,
    /// those inside the parentheses optional, quoted ones strings.
    pub fn params(&self) -> Vec<Parameter> {
        let mut out = Vec::new();
        let mut optional = false;
        for word in self.usage.split_whitespace().skip(1) {
            match word {
                "(" => optional = true,
                ")" => optional = false,
                w => out.push(Parameter {
                    name: w
                        .chars()
                        .filter(|c| c.is_alphanumeric() || *c == '_')
                        .collect(),
                    string: w.starts_with('"'),
                    optional,
                }),
            }
        }
        out
    }

    /// How many parameters the method takes: `(required, most)`.
    pub fn arity(&self) -> (usize, usize) {
        let params = self.params();
        let required = params.iter().filter(|p| !p.optional).count();
        (required, params.len())
    }
}

/// The method named `name`.
pub fn find(name: &str) -> Option<&'static Usage> {
    METHODS.iter().find(|m| m.name == name)
}

/// `help` without a method: every usage line under its category heading.
pub fn overview() -> String {
    let mut out = String::new();
    let mut category = "";
    for m in METHODS {
        if m.category != category {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("== {} ==\n", m.category));
            category = m.category;
        }
        out.push_str(m.usage);
        out.push('\n');
    }
    out
}

/// `help <method>`: its usage line and summary, or `None` for an unknown method.
pub fn describe(name: &str) -> Option<String> {
    find(name).map(|m| format!("{}\n\n{}\n", m.usage, m.summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One method as its trait declares it: name, doc comment, and parameters (name, optional).
    struct Declared {
        name: String,
        doc: String,
        params: Vec<(String, bool)>,
    }

    /// Every `#[method]` and `#[subscription]` in the topic traits' source.
    fn declared() -> Vec<Declared> {
        let sources = [
            include_str!("address.rs"),
            include_str!("blockchain.rs"),
            include_str!("control.rs"),
            include_str!("mempool.rs"),
            include_str!("mining.rs"),
            include_str!("network.rs"),
            include_str!("rawtx.rs"),
        ];
        let mut out = Vec::new();
        for source in sources {
            let lines: Vec<&str> = source.lines().map(str::trim).collect();
            for (i, line) in lines.iter().enumerate() {
                let Some(rest) = line
                    .strip_prefix("#[method(name = \"")
                    .or_else(|| line.strip_prefix("#[subscription(name = \""))
                else {
                    continue;
                };
                let name = rest.split('"').next().unwrap().to_string();
                let doc: Vec<&str> = lines[..i]
                    .iter()
                    .rev()
                    .take_while(|l| l.starts_with("///"))
                    .map(|l| l.trim_start_matches("///").trim())
                    .collect();
                let doc = doc.into_iter().rev().collect::<Vec<_>>().join(" ");
                // The signature runs from `async fn` to the line ending in `;`.
                let signature: String = lines[i + 1..]
                    .iter()
                    .take_while(|l| !l.ends_with(';'))
                    .chain(lines[i + 1..].iter().find(|l| l.ends_with(';')))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                let inside = signature
                    .split_once('(')
                    .and_then(|(_, r)| r.rsplit_once(')'))
                    .map(|(args, _)| args)
                    .unwrap_or("");
                let inside = inside.rsplit_once(')').map_or(inside, |(a, _)| a);
                let params = inside
                    .split(", ")
                    .filter_map(|p| p.split_once(": "))
                    .map(|(n, t)| (n.trim().to_string(), t.trim().starts_with("Option<")))
                    .collect();
                out.push(Declared { name, doc, params });
            }
        }
        out
    }

    /// `help` says what the traits declare: each method's summary is its doc comment, and its
    /// usage names its parameters in order, the optional ones in parentheses.
    #[test]
    fn help_matches_the_method_declarations() {
        let declared = declared();
        assert_eq!(declared.len(), METHODS.len());
        for d in declared {
            let usage = find(&d.name).unwrap_or_else(|| panic!("{} not in help", d.name));
            assert_eq!(usage.summary, d.doc, "summary of {}", d.name);
            let words: Vec<(String, bool)> = usage
                .params()
                .into_iter()
                .map(|p| (p.name, p.optional))
                .collect();
            assert_eq!(words, d.params, "usage of {}", d.name);
        }
    }

    #[test]
    fn arity_is_read_from_the_usage_line() {
        let arity = |name| find(name).map(Usage::arity);
        assert_eq!(arity("getblockcount"), Some((0, 0)));
        assert_eq!(arity("getblockhash"), Some((1, 1)));
        assert_eq!(arity("gettxout"), Some((2, 3)));
        assert_eq!(arity("verifychain"), Some((0, 2)));
        assert_eq!(arity("testmempoolaccept"), Some((1, 2)));
        assert_eq!(arity("getrawtransaction"), Some((1, 3)));
        assert_eq!(arity("nosuchmethod"), None);
    }
}
