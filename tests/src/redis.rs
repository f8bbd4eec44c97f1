//! `TestRedis`: a redis-server of the test's own on a free port, in a temporary directory, so a test
//! can pause, kill, flush and restart it without touching the machine's Redis.
use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct TestRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl TestRedis {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("warden-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut redis = Self {
            port,
            dir,
            child: None,
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and directory: it loads `dump.rdb` if one was saved.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", self.dir.to_str().expect("utf-8 dir")])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "local"]) // `slow` uses DEBUG SLEEP.
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cli(&["PING"]) != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis-cli` against this server; its trimmed output.
    pub fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
            .unwrap_or_default()
    }

    /// Makes every answer late for `total`: a thread keeps the server busy in `DEBUG SLEEP 0.1`,
    /// so each command waits up to 100 ms and then is answered. Join the handle to end it.
    pub fn slow(&self, total: Duration) -> std::thread::JoinHandle<()> {
        let port = self.port.to_string();
        std::thread::spawn(move || {
            let until = Instant::now() + total;
            while Instant::now() < until {
                let _ = Command::new("redis-cli")
                    .args(["-p", &port, "DEBUG", "SLEEP", "0.1"])
                    .output();
            }
        })
    }

    /// SIGSTOP: the port stays open and nothing answers, like a hung server.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// How many times `command` ran since start (INFO commandstats).
    pub fn calls(&self, command: &str) -> u64 {
        let stats = self.cli(&["INFO", "commandstats"]);
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|calls| calls.parse().ok())
            .unwrap_or(0)
    }

    /// How many key lookups found their key since start (INFO stats).
    pub fn hits(&self) -> u64 {
        self.cli(&["INFO", "stats"])
            .lines()
            .find_map(|line| line.strip_prefix("keyspace_hits:"))
            .and_then(|hits| hits.trim().parse().ok())
            .unwrap_or(0)
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("kill");
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.resume();
        self.kill();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}
