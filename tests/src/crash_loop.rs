//! The crash loop: a node fed blocks and reorgs (competing branches, `invalidateblock`,
//! `reconsiderblock`) is killed with SIGKILL at random moments — while a reorg-triggering block
//! connects, during an invalidation, and during the recovery that follows a restart — and after
//! every restart it must sit on the most-work valid tip it knows and, once the interrupted
//! command is sent again, have the same tip and UTXO-set hash as a control node fed the same
//! commands without crashes. [`run_with`] gives the victim flags of its own: with
//! `--dbcache 0` it flushes its coins cache with every block, so kills land in flushes, and its
//! UTXO-set hash is compared with a control on the default cache. Kills also land while the
//! indexes catch up after a restart: the loop counts the restarts that found an index behind,
//! and at the end waits for the victim's indexes to reach its tip before `verifychain 4`
//! compares its address index with a replay.
//!
//! Blocks come from [`Builder`], so from height 101 on each moves real coins and reorgs
//! return transactions to the pool.

use std::time::{Duration, Instant};

use chaincore::validation::COINBASE_MATURITY;
use chaincore::{Block, BlockHash, Network};
use serde_json::{json, Value};

use crate::builder::Builder;
use crate::{Node, TempDir};

const NET: Network = Network::Regtest;

/// A small deterministic random source (xorshift64*), so a failing seed can be re-run.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// One command sent to both nodes.
#[derive(Clone, Debug)]
pub enum Command {
    /// `submitblock` of each block in order, and whether the last one moves the tip to another
    /// branch.
    Submit(Vec<Block>, bool),
    /// `invalidateblock`.
    Invalidate(BlockHash),
    /// `reconsiderblock`.
    Reconsider(BlockHash),
}

impl Command {
    /// Sends the command; `Err` if the node could not be reached (it was killed).
    fn send(&self, node: &Node) -> Result<(), Value> {
        match self {
            Command::Submit(blocks, _) => {
                for b in blocks {
                    let hex = hex::encode(chaincore::encode::serialize(b));
                    node.call("submitblock", json!([hex]))?;
                }
                Ok(())
            }
            Command::Invalidate(h) => node
                .call("invalidateblock", json!([h.to_string()]))
                .map(drop),
            Command::Reconsider(h) => node
                .call("reconsiderblock", json!([h.to_string()]))
                .map(drop),
        }
    }

    /// True for commands that move the tip to another branch (the interesting kill moments).
    fn reorganizes(&self) -> bool {
        match self {
            Command::Submit(_, reorg) => *reorg,
            _ => true,
        }
    }
}

/// What a crash loop saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Rounds run (one kill -9 of a running command each).
    pub rounds: u32,
    /// Kills while a reorganizing command (fork, invalidate, reconsider) ran.
    pub kills_during_reorg: u32,
    /// Extra kills during the restart that followed (recovery).
    pub kills_during_recovery: u32,
    /// Restarts whose tip differed from the one before the kill (the node moved on open or
    /// had committed part of the command).
    pub restarts_that_moved: u32,
    /// Kills of a start that found its indexes behind (after a run with them off).
    pub kills_during_catch_up: u32,
    /// Restarts after which `getindexinfo` showed an index not yet synced (catching up).
    pub restarts_with_index_behind: u32,
    /// Rounds that ended inconsistent, with what was wrong.
    pub failures: Vec<String>,
    /// Height of the control node at the end.
    pub final_height: u64,
    /// Wall time of the whole loop.
    pub elapsed: Duration,
}

/// Chooses the next command from the control node's state.
fn next_command(
    rng: &mut Rng,
    b: &mut Builder,
    control: &Node,
    invalidated: &mut Vec<BlockHash>,
) -> Command {
    let tip: BlockHash = control
        .rpc("getbestblockhash", json!([]))
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let height = b.height(&tip);
    match rng.below(10) {
        // Reconsider the most recent invalidation.
        0 | 1 if !invalidated.is_empty() => Command::Reconsider(invalidated.remove(0)),
        // Invalidate an active block a few below the tip.
        2 | 3 if height > 2 => {
            let depth = 1 + rng.below(4.min(u64::from(height) - 1)) as u32;
            let target = b.ancestor(&tip, height - depth);
            invalidated.push(target);
            Command::Invalidate(target)
        }
        // A heavier branch from up to 8 blocks down: its last block triggers the reorg.
        4..=6 if height > 1 => {
            let depth = 1 + rng.below(8.min(u64::from(height))) as u32;
            let mut parent = b.ancestor(&tip, height - depth);
            let mut blocks = Vec::new();
            for _ in 0..depth + 1 + rng.below(2) as u32 {
                let block = b.build(&parent);
                parent = block.block_hash();
                blocks.push(block);
            }
            Command::Submit(blocks, true)
        }
        // Extend the tip.
        _ => {
            let mut parent = tip;
            let mut blocks = Vec::new();
            for _ in 0..1 + rng.below(3) {
                let block = b.build(&parent);
                parent = block.block_hash();
                blocks.push(block);
            }
            Command::Submit(blocks, false)
        }
    }
}

/// The victim's state must be the most-work valid tip it knows: no valid fork longer than the
/// active chain (regtest blocks all carry the same work).
fn check_on_most_work_tip(node: &Node) -> Result<(), String> {
    let tips = node.rpc("getchaintips", json!([]));
    let tips = tips.as_array().ok_or("getchaintips is not a list")?;
    let active = tips
        .iter()
        .find(|t| t["status"] == "active")
        .ok_or_else(|| format!("no active tip in {tips:?}"))?;
    let height = active["height"].as_u64().unwrap_or(0);
    match tips
        .iter()
        .find(|t| t["status"] == "valid-fork" && t["height"].as_u64().unwrap_or(0) > height)
    {
        Some(t) => Err(format!(
            "restarted at height {height} with a heavier valid fork {t}"
        )),
        None => Ok(()),
    }
}

/// Tip hash and UTXO-set hash.
fn state(node: &Node) -> (Value, Value) {
    let info = node.rpc("gettxoutsetinfo", json!([]));
    (info["bestblock"].clone(), info["hash_serialized"].clone())
}

/// True if every enabled index of `node` has taken in its tip.
fn indexes_synced(node: &Node) -> bool {
    let info = node.rpc("getindexinfo", json!([]));
    info.as_object()
        .is_some_and(|m| m.values().all(|i| i["synced"] == true))
}

/// Runs `rounds` rounds from `seed` against debug or release binaries (whichever the process
/// chose), in `dir`.
pub fn run(rounds: u32, seed: u64, dir: &TempDir) -> Report {
    run_with(rounds, seed, dir, &[])
}

/// [`run`] with `victim_args` added to the victim's flags (the control keeps the defaults).
pub fn run_with(rounds: u32, seed: u64, dir: &TempDir, victim_args: &[&str]) -> Report {
    let start = Instant::now();
    let mut rng = Rng::new(seed);
    let mut b = Builder::new();
    let control = Node::start(&dir.sub("control"), &["--listen", "false"]);
    let mut args = vec!["--listen", "false"];
    args.extend_from_slice(victim_args);
    let mut victim = Node::start(&dir.sub("victim"), &args);
    let mut report = Report::default();
    // A prefix past coinbase maturity, so blocks carry spends.
    let mut parent = NET.genesis_hash();
    let mut prefix = Vec::new();
    for _ in 0..COINBASE_MATURITY + 5 {
        let block = b.build(&parent);
        parent = block.block_hash();
        prefix.push(block);
    }
    let prefix = Command::Submit(prefix, false);
    prefix.send(&control).expect("control takes the prefix");
    prefix.send(&victim).expect("victim takes the prefix");
    let mut invalidated = Vec::new();
    while report.rounds < rounds {
        // A few commands between kills, so the chain grows and forks pile up.
        for _ in 0..rng.below(3) {
            let c = next_command(&mut rng, &mut b, &control, &mut invalidated);
            c.send(&control).expect("control answers");
            c.send(&victim).expect("victim answers");
        }
        let command = next_command(&mut rng, &mut b, &control, &mut invalidated);
        let timed = Instant::now();
        command.send(&control).expect("control answers");
        let took = timed.elapsed();
        let before = victim.rpc("getbestblockhash", json!([]));
        // Kill somewhere inside the command's run (as long as it took the control, or a bit
        // longer: the victim may be slower), or just after it.
        let delay = Duration::from_micros(rng.below(took.as_micros() as u64 * 3 / 2 + 1));
        let sender = {
            let command = command.clone();
            let client = victim.client();
            std::thread::spawn(move || command.send(&client).is_ok())
        };
        std::thread::sleep(delay);
        victim.kill9();
        let _ = sender.join();
        report.rounds += 1;
        if command.reorganizes() {
            report.kills_during_reorg += 1;
        }
        // Sometimes kill the restart too, while it may be finishing the interrupted move.
        if rng.below(3) == 0 {
            victim.spawn_without_waiting();
            std::thread::sleep(Duration::from_millis(rng.below(400)));
            victim.kill9();
            report.kills_during_recovery += 1;
        }
        if report.rounds % 7 == 3 {
            // Every seventh round a run with the indexes off, so the next start finds them
            // behind by that run's blocks and catches up, and a kill may land in the catch-up.
            victim.restart_with(&["--txindex", "false", "--addressindex", "false"]);
            // The interrupted command first (it is idempotent), so both nodes take the
            // same commands in the same order.
            if let Err(e) = command.send(&victim) {
                report.failures.push(format!(
                    "round {}: resending {command:?} with the indexes off: {e}",
                    report.rounds
                ));
            }
            for _ in 0..1 + rng.below(3) {
                let c = next_command(&mut rng, &mut b, &control, &mut invalidated);
                c.send(&control).expect("control answers");
                if let Err(e) = c.send(&victim) {
                    report.failures.push(format!(
                        "round {}: with the indexes off, {c:?}: {e}",
                        report.rounds
                    ));
                }
            }
            victim.kill9();
            victim.spawn_without_waiting();
            std::thread::sleep(Duration::from_millis(rng.below(200)));
            victim.kill9();
            report.kills_during_catch_up += 1;
        }
        victim.restart();
        if !indexes_synced(&victim) {
            report.restarts_with_index_behind += 1;
        }
        if victim.rpc("getbestblockhash", json!([])) != before {
            report.restarts_that_moved += 1;
        }
        if let Err(e) = check_on_most_work_tip(&victim) {
            report
                .failures
                .push(format!("round {}: {e}", report.rounds));
        }
        // Send the interrupted command again: it is idempotent.
        if let Err(e) = command.send(&victim) {
            report.failures.push(format!(
                "round {}: resending {command:?}: {e}",
                report.rounds
            ));
        }
        let (c, v) = (state(&control), state(&victim));
        if c != v {
            report.failures.push(format!(
                "round {}: control at {:?}, victim at {:?} after {command:?}",
                report.rounds, c, v
            ));
            // Later rounds would only repeat this difference.
            break;
        }
    }
    crate::wait_for("the victim's indexes to reach its tip", || {
        indexes_synced(&victim).then_some(())
    });
    if victim.rpc("verifychain", json!([4, 0])) != json!(true) {
        report
            .failures
            .push("verifychain 4 failed on the victim at the end".into());
    }
    report.final_height = control
        .rpc("getblockcount", json!([]))
        .as_u64()
        .unwrap_or(0);
    report.elapsed = start.elapsed();
    report
}
