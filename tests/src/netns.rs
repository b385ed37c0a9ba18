//! Separate hosts on one machine: Linux network namespaces (`ip netns`, `ip link`; needs root,
//! as CI has), each with its own address, wired by veth pairs to a hub namespace that routes
//! between them, as a switch or a router of a real network would.
//!
//! ```text
//!   host 0 ─┐                          ┌─ host 4        hosts: 10.<net>.0.11, .12, … (/32)
//!   host 1 ─┼─ hub 0 ══ trunk ══ hub 1 ─┼─ host 5        hubs:  10.<net>.0.1 on every host link
//!   host 2 ─┘    │                 │    └─ host 6
//!             tun 0             tun 1                    tun k: the delay forwarder of hub k
//!                └── mgmt ─ test process ─ mgmt ──┘      mgmt:  10.<net>.1.0/30, .4/30
//! ```
//!
//! - **Delay and loss** ([`Wiring::delay`], [`Wiring::loss`]): a hub's policy routing sends
//!   every packet from one host to another into its TUN device, whose
//!   [`Forwarder`](crate::delay::Forwarder) holds it for the delay and drops the lost ones;
//!   what comes back out of the TUN (or over the trunk, already delayed by the other hub) goes
//!   by the main table to its host. So each packet between two hosts is delayed exactly once,
//!   including on connections to addresses learned by gossip; with no delay and no loss there
//!   is no TUN and the hubs just route.
//! - **Partitions** ([`Lab::partition`]): the trunk between the hubs is set down (both ends),
//!   so every path between the two sides is cut; packets to the other side are dropped
//!   without an answer (a blackhole route for the subnet behind the hosts' own routes), so
//!   TCP connections across the cut stall as on a pulled cable. Which hosts hang on hub 1 is
//!   chosen when the lab is made ([`Wiring::far`]).
//! - **Management**: the test process reaches each hub over its own veth pair and every node's
//!   RPC through it, never through a TUN or the trunk: RPC is neither delayed nor cut.

use std::process::Command;
use std::time::Duration;

use crate::delay::Forwarder;

/// Every lab's subnet is a `/24` inside this one (`10.<net>.0.0/24`); nodes allow RPC from it.
pub const SUBNET: &str = "10.0.0.0/8";

/// How a lab's hosts are joined.
#[derive(Clone, Debug, Default)]
pub struct Wiring {
    /// One-way delay of every packet between two hosts (zero: none).
    pub delay: Duration,
    /// Share of packets between two hosts lost, in `[0, 1)`, each packet and direction drawn
    /// on its own.
    pub loss: f64,
    /// The hosts on hub 1, the side [`Lab::partition`] can cut off; empty: one hub.
    pub far: Vec<usize>,
}

impl Wiring {
    /// No delay or loss; the hosts `far` on the second hub.
    pub fn split(far: &[usize]) -> Wiring {
        Wiring {
            far: far.to_vec(),
            ..Wiring::default()
        }
    }
}

/// A set of host namespaces on one or two hub namespaces, removed on drop.
pub struct Lab {
    net: u8,
    /// Hub namespace names (one or two).
    hubs: Vec<String>,
    /// Each host's namespace, address and hub.
    hosts: Vec<(String, String, usize)>,
    /// The root-namespace ends of the management links.
    mgmt: Vec<String>,
    /// One per hub, if there is delay or loss.
    forwarders: Vec<Forwarder>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Sets sysctl `key` (a path under `/proc/sys`) to `value` inside namespace `ns`.
fn sysctl(ns: &str, key: &str, value: &str) -> Result<(), String> {
    let script = format!("echo {value} > /proc/sys/{key}");
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", &script])
        .output()
        .map_err(|e| format!("cannot run ip netns exec: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{script} in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Lab {
    /// Creates `n` hosts `10.77.0.11`, `10.77.0.12`, … on one hub, without delay, or says why
    /// it cannot (not root, no `ip`).
    pub fn new(n: usize) -> Result<Lab, String> {
        Lab::on_subnet("cc", 77, n, &Wiring::default())
    }

    /// Creates `n` hosts on subnet `10.<net>.0.0/24` (hosts from `.11`) joined as `wiring`
    /// says, with namespace and interface names starting with `tag` (two letters) and this
    /// process's id, so labs of different tests and test binaries never share a name. At most
    /// 200 hosts.
    pub fn on_subnet(tag: &str, net: u8, n: usize, wiring: &Wiring) -> Result<Lab, String> {
        assert!(n <= 200, "at most 200 hosts per lab");
        let prefix = format!("{tag}{}", std::process::id() % 100_000);
        let two = wiring.far.iter().any(|&i| i < n);
        let mut lab = Lab {
            net,
            hubs: Vec::new(),
            hosts: Vec::new(),
            mgmt: Vec::new(),
            forwarders: Vec::new(),
        };
        for k in 0..1 + usize::from(two) {
            let hub = format!("{prefix}h{k}");
            let mgmt = format!("{prefix}m{k}");
            // Anything left by a killed earlier run of this process id.
            let _ = ip(&["netns", "del", &hub]);
            let _ = ip(&["link", "del", &mgmt]);
            ip(&["netns", "add", &hub])?;
            lab.hubs.push(hub.clone());
            ip(&["-n", &hub, "link", "set", "lo", "up"])?;
            sysctl(&hub, "net/ipv4/ip_forward", "1")?;
            // Packets come back out of the TUN with their hosts' source addresses.
            sysctl(&hub, "net/ipv4/conf/all/rp_filter", "0")?;
            sysctl(&hub, "net/ipv4/conf/default/rp_filter", "0")?;
            // A host on the far side of a cut trunk: dropped without an answer.
            ip(&[
                "-n",
                &hub,
                "route",
                "add",
                "blackhole",
                &format!("10.{net}.0.0/24"),
            ])?;
            ip(&[
                "link", "add", &mgmt, "type", "veth", "peer", "name", "mgmt", "netns", &hub,
            ])?;
            lab.mgmt.push(mgmt.clone());
            ip(&[
                "addr",
                "add",
                &format!("10.{net}.1.{}/30", 4 * k + 1),
                "dev",
                &mgmt,
            ])?;
            ip(&["link", "set", &mgmt, "up"])?;
            let hub_mgmt = format!("10.{net}.1.{}/30", 4 * k + 2);
            ip(&["-n", &hub, "addr", "add", &hub_mgmt, "dev", "mgmt"])?;
            ip(&["-n", &hub, "link", "set", "mgmt", "up"])?;
        }
        // The test process reaches hub 0's hosts through hub 0, hub 1's through hub 1 (replace:
        // a lab a killed run left on this subnet loses its route).
        ip(&[
            "route",
            "replace",
            &format!("10.{net}.0.0/24"),
            "via",
            &format!("10.{net}.1.2"),
        ])?;
        if two {
            ip(&[
                "link",
                "add",
                "trunk",
                "netns",
                &lab.hubs[0],
                "type",
                "veth",
                "peer",
                "name",
                "trunk",
                "netns",
                &lab.hubs[1],
            ])?;
            for (k, hub) in lab.hubs.iter().enumerate() {
                let addr = format!("10.{net}.2.{}/30", k + 1);
                ip(&["-n", hub, "addr", "add", &addr, "dev", "trunk"])?;
                ip(&["-n", hub, "link", "set", "trunk", "up"])?;
                // What crossed the trunk was delayed on the other hub already.
                ip(&[
                    "-n", hub, "rule", "add", "iif", "trunk", "lookup", "main", "prio", "100",
                ])?;
            }
        }
        for i in 0..n {
            let k = usize::from(two && wiring.far.contains(&i));
            let (hub, ns) = (&lab.hubs[k], format!("{prefix}n{i}"));
            let addr = format!("10.{net}.0.{}", 11 + i);
            let _ = ip(&["netns", "del", &ns]);
            ip(&["netns", "add", &ns])?;
            lab.hosts.push((ns.clone(), addr.clone(), k));
            let veth = format!("v{i}");
            ip(&[
                "link", "add", &veth, "netns", hub, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ])?;
            ip(&[
                "-n",
                hub,
                "addr",
                "add",
                &format!("10.{net}.0.1/32"),
                "dev",
                &veth,
            ])?;
            ip(&["-n", hub, "link", "set", &veth, "up"])?;
            ip(&[
                "-n",
                hub,
                "route",
                "add",
                &format!("{addr}/32"),
                "dev",
                &veth,
            ])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/32"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            let gateway = format!("10.{net}.0.1");
            ip(&["-n", &ns, "route", "add", &gateway, "dev", "eth0"])?;
            ip(&["-n", &ns, "route", "add", SUBNET, "via", &gateway])?;
            if k == 1 {
                let via = format!("10.{net}.1.6");
                ip(&["route", "replace", &format!("{addr}/32"), "via", &via])?;
            }
        }
        lab.trunk_routes()?;
        if wiring.delay > Duration::ZERO || wiring.loss > 0.0 {
            for k in 0..lab.hubs.len() {
                lab.add_forwarder(&prefix, k, wiring)?;
            }
        }
        Ok(lab)
    }

    /// Starts hub `k`'s forwarder on TUN `<prefix>t<k>` and routes host-to-host packets into it.
    fn add_forwarder(&mut self, prefix: &str, k: usize, wiring: &Wiring) -> Result<(), String> {
        let (hub, tun, net) = (self.hubs[k].clone(), format!("{prefix}t{k}"), self.net);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ (k as u64) << 32;
        let forwarder = Forwarder::start(&tun, wiring.delay, wiring.loss, seed)?;
        self.forwarders.push(forwarder);
        ip(&["link", "set", &tun, "netns", &hub])?;
        ip(&["-n", &hub, "link", "set", &tun, "up"])?;
        sysctl(&hub, &format!("net/ipv4/conf/{tun}/rp_filter"), "0")?;
        let subnet = format!("10.{net}.0.0/24");
        ip(&[
            "-n", &hub, "rule", "add", "iif", &tun, "lookup", "main", "prio", "100",
        ])?;
        ip(&[
            "-n", &hub, "rule", "add", "from", &subnet, "to", &subnet, "lookup", "100", "prio",
            "200",
        ])?;
        ip(&[
            "-n", &hub, "route", "add", "default", "dev", &tun, "table", "100",
        ])
    }

    /// Routes each hub's packets for the other hub's hosts over the trunk (again after the
    /// trunk was down: a link set down loses its routes).
    fn trunk_routes(&self) -> Result<(), String> {
        if self.hubs.len() < 2 {
            return Ok(());
        }
        for (k, hub) in self.hubs.iter().enumerate() {
            let other = format!("10.{}.2.{}", self.net, 2 - k);
            for (_, addr, _) in self.hosts.iter().filter(|(_, _, h)| *h != k) {
                let dest = format!("{addr}/32");
                ip(&["-n", hub, "route", "replace", &dest, "via", &other])?;
            }
        }
        Ok(())
    }

    /// How many hosts the lab has.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// True if the lab has no hosts.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Host `i`'s namespace name and address.
    pub fn host(&self, i: usize) -> (&str, &str) {
        let (ns, addr, _) = &self.hosts[i];
        (ns, addr)
    }

    /// Packets the delay forwarders wrote back and dropped so far, over both hubs (zeros
    /// without delay or loss).
    pub fn forwarded(&self) -> (u64, u64) {
        self.forwarders
            .iter()
            .map(Forwarder::counts)
            .fold((0, 0), |(f, d), (a, b)| (f + a, d + b))
    }

    /// Cuts every path between the hosts in `a` and those in `b` by setting the trunk between
    /// the hubs down. The hosts of `a` must all hang on one hub and those of `b` on the other
    /// (see [`Wiring::far`]); hosts in neither stay with their hub's side.
    pub fn partition(&self, a: &[usize], b: &[usize]) -> Result<(), String> {
        self.check_sides(a, b)?;
        for hub in &self.hubs {
            ip(&["-n", hub, "link", "set", "trunk", "down"])?;
        }
        Ok(())
    }

    /// Undoes [`Lab::partition`] for the same sides: the trunk up again, with its routes.
    pub fn heal(&self, a: &[usize], b: &[usize]) -> Result<(), String> {
        self.check_sides(a, b)?;
        for hub in &self.hubs {
            ip(&["-n", hub, "link", "set", "trunk", "up"])?;
        }
        self.trunk_routes()
    }

    fn check_sides(&self, a: &[usize], b: &[usize]) -> Result<(), String> {
        let hub_of = |side: &[usize]| -> Option<usize> {
            let first = self.hosts.get(*side.first()?)?.2;
            side.iter()
                .all(|&i| self.hosts.get(i).is_some_and(|h| h.2 == first))
                .then_some(first)
        };
        match (hub_of(a), hub_of(b)) {
            (Some(x), Some(y)) if x != y => Ok(()),
            _ => Err(format!(
                "sides {a:?} and {b:?} are not the lab's two hubs: make it with Wiring::far \
                 naming one of them"
            )),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (ns, _, _) in &self.hosts {
            let _ = ip(&["netns", "del", ns]);
        }
        // The forwarders first: their TUN devices go with the hubs.
        self.forwarders.clear();
        for hub in &self.hubs {
            let _ = ip(&["netns", "del", hub]);
        }
        // The test process's routes to the hosts go with these links.
        for mgmt in &self.mgmt {
            let _ = ip(&["link", "del", mgmt]);
        }
    }
}
