//! The deployment `msa chaos` starts and breaks: the single server, or the microservices
//! (PostgreSQL of its own, a tansu broker, four services and the gateway), each a child process
//! of this one, every service and the broker behind a [`Link`].

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sqlx::Connection;
use tokio::process::{Child, Command};

use crate::cli::{ChaosArgs, ChaosDeployment};
use msa_testkit::link::{Link, LinkState};

/// libfaketime, from Debian's `faketime` package: the processes' wall clock follows a file.
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The single server's filesystem: room for a long run's files (tmpfs takes memory only for
/// what is stored).
const DISK_SIZE: &str = "8g";

/// The services of the microservice deployment, in the order they start.
pub const SERVICES: [&str; 4] = ["user", "chat", "payment", "user-chat"];

fn free_port() -> Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn url(address: SocketAddr) -> String {
    format!("http://{address}")
}

/// A process's standard output and error, both appended to `log` (a restart adds to it).
fn logging_to(log: &Path) -> Result<(Stdio, Stdio)> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    Ok((file.try_clone()?.into(), file.into()))
}

/// One `msa` (or tansu) process, started again the same way after a kill.
struct Process {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Process {
    fn start(&mut self) -> Result<()> {
        let (stdout, stderr) = logging_to(&self.log)?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL: no shutdown, no flush, whatever the process was doing.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// PostgreSQL of the run's own (so it can be restarted), in the run's directory.
struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// The user it runs as when this process is root (PostgreSQL refuses to run as root).
    owner: Option<(u32, u32)>,
    server: Option<Child>,
    log: PathBuf,
}

impl Postgres {
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        command.stdin(Stdio::null()).kill_on_drop(true);
        command
    }

    async fn init(bin: PathBuf, work: &Path) -> Result<Postgres> {
        let dir = work.join("postgres");
        std::fs::create_dir(&dir)?;
        let owner = if is_root() {
            let owner = user_ids("postgres").context(
                "running as root, PostgreSQL must run as the `postgres` user, and there is none",
            )?;
            std::os::unix::fs::chown(&dir, Some(owner.0), Some(owner.1))?;
            // The run's directory is the root's (0700): PostgreSQL's user must pass through it.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(work, std::fs::Permissions::from_mode(0o711))?;
            Some(owner)
        } else {
            None
        };
        let postgres = Postgres {
            bin,
            log: work.join("postgres.log"),
            dir,
            port: free_port()?,
            owner,
            server: None,
        };
        let out = postgres
            .command("initdb")
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&postgres.dir)
            .output()
            .await
            .context("running initdb (see --postgres-bin)")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(postgres)
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    async fn start(&mut self) -> Result<()> {
        let (stdout, stderr) = logging_to(&self.log)?;
        let server = self
            .command("postgres")
            .arg("-D")
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .args(["-c", "max_connections=300", "-c", "fsync=off"])
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .context("starting postgres")?;
        self.server = Some(server);
        let deadline = Instant::now() + Duration::from_secs(60);
        while sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!(
                    "PostgreSQL did not answer within 60 s (log: {})",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// Stops at once, as a crash would (`immediate`: no checkpoint; recovery from the WAL on the
    /// next start), and waits for the server to be gone.
    async fn stop(&mut self) -> Result<()> {
        if let Some(mut server) = self.server.take() {
            let _ = self
                .command("pg_ctl")
                .args(["stop", "-m", "immediate", "-D"])
                .arg(&self.dir)
                .output()
                .await;
            if tokio::time::timeout(Duration::from_secs(30), server.wait())
                .await
                .is_err()
            {
                let _ = server.kill().await;
            }
        }
        Ok(())
    }

    async fn create_database(&self, name: &str) -> Result<()> {
        let mut connection = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut connection)
            .await?;
        Ok(())
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The uid and gid of a local user, from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

/// The newest PostgreSQL server programs installed (Debian's layout).
pub fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Whether the processes' clocks can be stepped (libfaketime installed).
pub fn clock_can_step() -> bool {
    Path::new(FAKETIME).is_file()
}

/// A small filesystem of the run's own (tmpfs) holding the single server's SQLite files, so
/// the disk can fill up without touching the machine's.
struct Disk {
    mount: PathBuf,
}

impl Disk {
    async fn mount(at: &Path) -> Result<Disk> {
        std::fs::create_dir_all(at)?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={DISK_SIZE},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .await
            .context("running mount")?;
        if !out.status.success() {
            bail!(
                "cannot mount a tmpfs for the data directory (the disk fault needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Disk {
            mount: at.to_owned(),
        })
    }

    /// Shrinks the filesystem to about what its files hold: the writes that need more fail with
    /// ENOSPC, as on a full disk (tmpfs resizes on a remount, and only what is stored
    /// takes memory).
    async fn fill(&self) -> Result<()> {
        // The server writes meanwhile: a size below what is stored by then is refused, so a
        // little room is left, more at each try, and what is left fills within moments.
        let mut failure = None;
        for margin_kib in [64, 256, 1024, 4096, 16384] {
            match self
                .resize(&format!("{}k", self.used_kib().await? + margin_kib))
                .await
            {
                Ok(()) => return Ok(()),
                Err(error) => failure = Some(error),
            }
        }
        Err(failure.expect("tried at least once"))
    }

    async fn used_kib(&self) -> Result<u64> {
        let out = Command::new("stat")
            .args(["-f", "-c", "%b %f %S"])
            .arg(&self.mount)
            .output()
            .await?;
        let numbers: Vec<u64> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let [blocks, free, block_size] = numbers[..] else {
            bail!("cannot read the size of {}", self.mount.display());
        };
        Ok((blocks - free) * block_size / 1024)
    }

    async fn free(&self) -> Result<()> {
        self.resize(DISK_SIZE).await
    }

    async fn resize(&self, size: &str) -> Result<()> {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.mount)
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "resizing the tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mount)
            .status();
    }
}

pub struct Deployment {
    /// Where clients connect: the single server, or the gateway.
    pub entry: String,
    processes: BTreeMap<String, Process>,
    links: BTreeMap<String, Link>,
    postgres: Option<Postgres>,
    broker: Option<Link>,
    disk: Option<Disk>,
    clock: Option<PathBuf>,
    msa: PathBuf,
    /// How `msa dlq list` reaches the stores and the bus.
    dlq_args: Vec<String>,
    pub work: PathBuf,
}

impl Deployment {
    /// Starts the deployment `args` names, in `work`, and waits until it is ready.
    pub async fn start(
        args: &ChaosArgs,
        work: &Path,
        with_clock: bool,
        with_disk: bool,
    ) -> Result<Deployment> {
        let msa = std::env::current_exe().context("finding the msa binary")?;
        let clock = with_clock.then(|| work.join("clock"));
        if let Some(clock) = &clock {
            std::fs::write(clock, "+0")?;
        }
        let mut deployment = Deployment {
            entry: String::new(),
            processes: BTreeMap::new(),
            links: BTreeMap::new(),
            postgres: None,
            broker: None,
            disk: None,
            clock,
            msa,
            dlq_args: Vec::new(),
            work: work.to_owned(),
        };
        match args.deployment {
            ChaosDeployment::Single => deployment.start_single(with_disk).await?,
            ChaosDeployment::Microservices => deployment.start_microservices(args).await?,
        }
        deployment.ready(Duration::from_secs(120)).await?;
        Ok(deployment)
    }

    /// Settings every server of the run shares: users made cheaply, tokens that outlive the
    /// run, and a send recovery that acts within seconds.
    fn common(&self) -> Vec<String> {
        [
            "--log-format",
            "json",
            "--password-hash-memory-kib",
            "64",
            "--password-hash-iterations",
            "1",
            "--access-token-ttl",
            "4h",
            "--send-recovery-after",
            "10s",
            "--upstream-timeout",
            "3s",
            "--payment-provider",
            "sandbox",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn edge_limits() -> Vec<String> {
        [
            "--rate-limit-per-address",
            "1000000",
            "--rate-limit-per-user",
            "1000000",
            "--password-attempts-per-minute",
            "1000000",
            "--streams-per-address",
            "1000000",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn add(&mut self, name: &str, args: Vec<String>) -> Result<()> {
        let mut env = vec![("RUST_LOG".to_owned(), "info".to_owned())];
        if let Some(clock) = &self.clock {
            env.extend([
                ("LD_PRELOAD".to_owned(), FAKETIME.to_owned()),
                (
                    "FAKETIME_TIMESTAMP_FILE".to_owned(),
                    clock.display().to_string(),
                ),
                ("FAKETIME_CACHE_DURATION".to_owned(), "1".to_owned()),
                // A machine's clock step moves the wall clock; the monotonic clock never jumps.
                ("FAKETIME_DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()),
            ]);
        }
        let mut process = Process {
            program: self.msa.clone(),
            args,
            env,
            log: self.work.join(format!("{name}.log")),
            child: None,
        };
        process.start()?;
        self.processes.insert(name.to_owned(), process);
        Ok(())
    }

    async fn start_single(&mut self, with_disk: bool) -> Result<()> {
        let data = self.work.join("data");
        if with_disk {
            self.disk = Some(Disk::mount(&data).await?);
        }
        let port = free_port()?;
        let mut args = vec![
            "serve".to_owned(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(["--data-dir".into(), data.display().to_string()]);
        args.extend(self.common());
        args.extend(Self::edge_limits());
        self.dlq_args = vec!["--data-dir".into(), data.display().to_string()];
        self.entry = format!("http://127.0.0.1:{port}");
        self.add("server", args)
    }

    async fn start_microservices(&mut self, args: &ChaosArgs) -> Result<()> {
        let bin = match &args.postgres_bin {
            Some(bin) => bin.clone(),
            None => postgres_bin().context(
                "no PostgreSQL server programs under /usr/lib/postgresql (install Debian's postgresql, or name them with --postgres-bin)",
            )?,
        };
        let mut postgres = Postgres::init(bin, &self.work).await?;
        postgres.start().await?;
        for name in [
            "chaos_user",
            "chaos_chat",
            "chaos_payment",
            "chaos_user_chat",
            "chaos_audit",
        ] {
            postgres.create_database(name).await?;
        }

        let tansu = match &args.tansu {
            Some(tansu) => tansu.clone(),
            None => msa_testkit::broker::tansu_binary().context(
                "no tansu broker (cargo install tansu --version 0.6.0 --locked --no-default-features --features dynostore,libsql, or name it with --tansu)",
            )?,
        };
        // Every client reaches the broker through its link, and is told to come back there.
        let inner: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let broker = Link::open(inner).await?;
        let mut process = Process {
            program: tansu,
            args: vec![
                "broker".into(),
                "--listener-url".into(),
                format!("tcp://{inner}"),
                "--advertised-listener-url".into(),
                format!("tcp://{}", broker.address),
                // tansu 0.6 forgets every topic on a restart with memory storage, and its
                // SQLite storage stalls under concurrent produce and fetch: the broker outage
                // is made at its link (see crates/testkit/src/broker.rs).
                "--storage-engine".into(),
                "memory://tansu/".into(),
            ],
            env: Vec::new(),
            log: self.work.join("tansu.log"),
            child: None,
        };
        process.start()?;
        self.processes.insert("broker".into(), process);
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(inner).await.is_err() {
            if Instant::now() > deadline {
                bail!("the broker did not listen within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let brokers = broker.address.to_string();
        self.broker = Some(broker);

        let mut listen = BTreeMap::new();
        for service in SERVICES {
            let address: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
            listen.insert(service, address);
            self.links
                .insert(service.to_owned(), Link::open(address).await?);
        }
        let urls: BTreeMap<&str, String> = SERVICES
            .iter()
            .map(|service| (*service, url(self.links[*service].address)))
            .collect();
        let at = |service: &str| urls[service].clone();
        for service in SERVICES {
            let database = format!("chaos_{}", service.replace('-', "_"));
            let mut command = vec![
                "serve".to_owned(),
                service.to_owned(),
                "--listen".into(),
                listen[service].to_string(),
                "--data-dir".into(),
                self.work.join(service).display().to_string(),
                "--database-url".into(),
                postgres.url(&database),
                "--kafka-brokers".into(),
                brokers.clone(),
            ];
            command.extend(self.common());
            let others: &[&str] = match service {
                "user" => &[],
                "chat" | "payment" => &["user", "user-chat"],
                _ => &["user", "chat", "payment"],
            };
            for other in others {
                command.extend([format!("--{other}"), at(other)]);
            }
            self.add(service, command)?;
        }
        let port = free_port()?;
        let mut gateway = vec![
            "gateway".to_owned(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ];
        gateway.extend(["--log-format".into(), "json".into()]);
        for service in SERVICES {
            gateway.extend([format!("--{service}"), at(service)]);
        }
        gateway.extend(Self::edge_limits());
        self.add("gateway", gateway)?;
        self.entry = format!("http://127.0.0.1:{port}");
        self.dlq_args = vec![
            "--database-url".into(),
            postgres.url("chaos_audit"),
            "--kafka-brokers".into(),
            brokers,
        ];
        self.postgres = Some(postgres);
        Ok(())
    }

    /// Waits until the entry's `/readyz` answers 200.
    pub async fn ready(&self, within: Duration) -> Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + within;
        loop {
            if let Ok(answer) = client.get(format!("{}/readyz", self.entry)).send().await {
                if answer.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the deployment was not ready within {within:?} (logs in {})",
                    self.work.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The processes a kill can take: the server, or each service and the gateway.
    pub fn killable(&self) -> Vec<String> {
        self.processes
            .keys()
            .filter(|name| *name != "broker")
            .cloned()
            .collect()
    }

    pub fn partitionable(&self) -> Vec<String> {
        self.links.keys().cloned().collect()
    }

    pub fn has_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    pub fn has_broker(&self) -> bool {
        self.broker.is_some()
    }

    pub fn has_disk(&self) -> bool {
        self.disk.is_some()
    }

    pub fn has_clock(&self) -> bool {
        self.clock.is_some()
    }

    /// SIGKILL, then the same command again at once.
    pub async fn kill(&mut self, name: &str) -> Result<()> {
        let process = self.processes.get_mut(name).context("no such process")?;
        process.kill().await;
        process.start()
    }

    pub async fn stop_postgres(&mut self) -> Result<()> {
        self.postgres
            .as_mut()
            .context("no PostgreSQL")?
            .stop()
            .await
    }

    pub async fn start_postgres(&mut self) -> Result<()> {
        self.postgres
            .as_mut()
            .context("no PostgreSQL")?
            .start()
            .await
    }

    pub fn set_broker(&self, state: LinkState) {
        if let Some(link) = &self.broker {
            link.set(state);
        }
    }

    pub fn set_link(&self, service: &str, state: LinkState) {
        if let Some(link) = self.links.get(service) {
            link.set(state);
        }
    }

    pub async fn fill_disk(&self) -> Result<()> {
        self.disk
            .as_ref()
            .context("no disk of the run's own")?
            .fill()
            .await
    }

    pub async fn free_disk(&self) -> Result<()> {
        self.disk
            .as_ref()
            .context("no disk of the run's own")?
            .free()
            .await
    }

    /// Steps every process's wall clock to `offset` seconds from the machine's.
    pub fn set_clock(&self, offset: i64) -> Result<()> {
        let clock = self
            .clock
            .as_ref()
            .context("the clocks cannot be stepped")?;
        std::fs::write(clock, format!("{offset:+}"))?;
        Ok(())
    }

    /// Dead letters, from `msa dlq list --json` (one JSON object per line).
    pub async fn dead_letters(&self) -> Result<Vec<serde_json::Value>> {
        let out = Command::new(&self.msa)
            .args(["dlq", "list", "--json"])
            .args(&self.dlq_args)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "msa dlq list failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }

    /// Stops every process (the links and the disk go when dropped).
    pub async fn stop(&mut self) {
        for process in self.processes.values_mut() {
            process.kill().await;
        }
        if let Some(postgres) = &mut self.postgres {
            let _ = postgres.stop().await;
        }
    }
}
