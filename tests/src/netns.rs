//! Separate hosts on one machine: Linux network namespaces, each with its own address on a
//! bridge in the root namespace (`ip netns`, `ip link`; needs root, as CI has). A partition is
//! a blackhole route in each namespace of one side for every address of the other, so the
//! test process (on the bridge address) still reaches every node's RPC.

use std::process::Command;

/// Every lab's subnet is a `/24` inside this one (`10.<net>.0.0/24`); nodes allow RPC from it.
pub const SUBNET: &str = "10.0.0.0/8";

/// A set of namespaces on one bridge, removed on drop.
pub struct Lab {
    prefix: String,
    bridge: String,
    hosts: Vec<(String, String)>,
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

impl Lab {
    /// Creates `n` hosts `10.77.0.11`, `10.77.0.12`, … or says why it cannot (not root, no
    /// `ip`, no bridge support).
    pub fn new(n: usize) -> Result<Lab, String> {
        Lab::on_subnet("cc", 77, n)
    }

    /// Like [`Lab::new`] on subnet `10.<net>.0.0/24` (the bridge `10.<net>.0.1`, hosts from
    /// `.11`), with interface and namespace names starting with `tag` (two letters) and this
    /// process's id, so labs of different tests and test binaries never share a name or an
    /// address. At most 200 hosts.
    pub fn on_subnet(tag: &str, net: u8, n: usize) -> Result<Lab, String> {
        assert!(n <= 200, "at most 200 hosts per lab");
        let prefix = format!("{tag}{}", std::process::id() % 100_000);
        let bridge = format!("{prefix}br");
        // Anything left by a killed earlier run of this process id.
        let _ = ip(&["link", "del", &bridge]);
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        let mut lab = Lab {
            prefix,
            bridge: bridge.clone(),
            hosts: Vec::new(),
        };
        ip(&["addr", "add", &format!("10.{net}.0.1/24"), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..n {
            let ns = format!("{}n{i}", lab.prefix);
            let veth = format!("{}v{i}", lab.prefix);
            let addr = format!("10.{net}.0.{}", 11 + i);
            let _ = ip(&["netns", "del", &ns]);
            ip(&["netns", "add", &ns])?;
            lab.hosts.push((ns.clone(), addr.clone()));
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &veth, "master", &bridge])?;
            ip(&["link", "set", &veth, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
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
        let (ns, addr) = &self.hosts[i];
        (ns, addr)
    }

    /// Cuts every path between the hosts in `a` and those in `b` (both directions).
    pub fn partition(&self, a: &[usize], b: &[usize]) -> Result<(), String> {
        self.routes("add", a, b)
    }

    /// Undoes [`Lab::partition`] for the same sides.
    pub fn heal(&self, a: &[usize], b: &[usize]) -> Result<(), String> {
        self.routes("del", a, b)
    }

    fn routes(&self, op: &str, a: &[usize], b: &[usize]) -> Result<(), String> {
        for (from, to) in [(a, b), (b, a)] {
            for &i in from {
                for &j in to {
                    let dest = format!("{}/32", self.hosts[j].1);
                    ip(&["-n", &self.hosts[i].0, "route", op, "blackhole", &dest])?;
                }
            }
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (ns, _) in &self.hosts {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
