//! A large document through the national SDK facade next to the native path, in one run.
//!
//! Two phases on fresh processes each (so VmHWM is the phase's own), sender → recipient over a
//! real hub:
//!   native: the file POSTed to the sender's local API, fetched by the recipient from its
//!           local API (`/v1/inbox/ID/body`);
//!   SDK:    an edXML package of the same size (the file base64-encoded as its attachment)
//!           sent with `sendEdoc` by the sender's DMS client, listed and fetched with `getEdoc`
//!           (base64 in JSON, decoded as it streams) by the recipient's.
//! Each is timed from the upload's first byte to the recipient's last byte, checked
//! byte-identical by SHA-256, and reported in MiB/s of the bytes the DMS handed over, with the
//! peak RSS (VmHWM) of the hub and both agents.
//!
//! `POROS_SDK_MIB` sets the size (default 300).

mod common;
use common::*;
use poros_harness::sdk::{is_ok, unpadded, SdkClient};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;
const SENDER: &str = "000.00.00.G01";
const RECEIVER: &str = "000.00.00.G02";
const TARGET_RSS_MIB: f64 = 64.0;
const NS: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";

/// Pseudo-random bytes in 1 MiB pieces (xorshift), so files of any size are made without
/// holding them.
struct Noise {
    left: u64,
    x: u64,
}

impl Read for Noise {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = (out.len() as u64).min(self.left) as usize;
        for w in out[..n].chunks_mut(8) {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            w.copy_from_slice(&self.x.to_le_bytes()[..w.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Hashes what is written, keeping nothing.
struct HashSink(ring::digest::Context, u64);

impl Write for HashSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        self.1 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn sha256_file(path: &Path) -> Res<ring::digest::Digest> {
    let mut f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut h = HashSink(ring::digest::Context::new(&ring::digest::SHA256), 0);
    std::io::copy(&mut f, &mut h)?;
    Ok(h.0.finish())
}

/// Write a native file of `len` bytes (a zip signature, then noise).
fn write_native(path: &Path, len: u64) -> Res<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    f.write_all(b"PK\x03\x04")?;
    std::io::copy(
        &mut Noise {
            left: len - 4,
            x: 0x2545_F491_4F6C_DD1D,
        },
        &mut f,
    )?;
    f.flush()?;
    Ok(())
}

/// Write an edXML package of about `len` bytes: a header, then one attachment of noise
/// base64-encoded on one line.
fn write_package(path: &Path, len: u64) -> Res<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    write!(
        f,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<edXML xmlns=\"{NS}\" xmlns:edXML=\"{NS}\">\
<edXML:edXMLEnvelope><edXML:edXMLHeader><edXML:MessageHeader>\
<edXML:From><edXML:OrganId>{SENDER}</edXML:OrganId><edXML:OrganName>Bench sender</edXML:OrganName></edXML:From>\
<edXML:To><edXML:OrganId>{RECEIVER}</edXML:OrganId><edXML:OrganName>Bench receiver</edXML:OrganName></edXML:To>\
<edXML:DocumentId>BENCH-1</edXML:DocumentId>\
<edXML:Code><edXML:CodeNumber>1</edXML:CodeNumber><edXML:CodeNotation>BC-BENCH</edXML:CodeNotation></edXML:Code>\
<edXML:Subject>Large package</edXML:Subject><edXML:OtherInfo><edXML:Priority>0</edXML:Priority></edXML:OtherInfo>\
</edXML:MessageHeader><edXML:TraceHeaderList><edXML:Bussiness><edXML:BussinessDocType>0</edXML:BussinessDocType></edXML:Bussiness></edXML:TraceHeaderList>\
</edXML:edXMLHeader><edXML:edXMLBody><edXML:edXMLManifest><edXML:Reference><edXML:ContentId>cid:1</edXML:ContentId>\
<edXML:AttachmentName>big.zip</edXML:AttachmentName></edXML:Reference></edXML:edXMLManifest></edXML:edXMLBody></edXML:edXMLEnvelope>\
<edXML:AttachmentEncoded><edXML:Attachment><edXML:ContentId>cid:1</edXML:ContentId><edXML:AttachmentName>big.zip</edXML:AttachmentName>\
<edXML:ContentType>application/zip</edXML:ContentType><edXML:ContentTransferEncoded>"
    )?;
    let raw = len / 4 * 3;
    {
        let mut enc =
            base64::write::EncoderWriter::new(&mut f, &base64::engine::general_purpose::STANDARD);
        enc.write_all(b"PK\x03\x04")?;
        std::io::copy(
            &mut Noise {
                left: raw - 4,
                x: 0x9E37_79B9_7F4A_7C15,
            },
            &mut enc,
        )?;
        enc.finish()?;
    }
    writeln!(
        f,
        "</edXML:ContentTransferEncoded></edXML:Attachment></edXML:AttachmentEncoded></edXML>"
    )?;
    f.flush()?;
    Ok(())
}

fn hwm(d: &Deployment, name: &str) -> f64 {
    d.procs()
        .pid(name)
        .and_then(|p| proc_status_kib(p, "VmHWM:"))
        .unwrap_or(0) as f64
        / 1024.0
}

/// A fresh hub with both agencies registered and their agents running, the SDK facade on
/// at both when `sdk`.
fn fresh(root: &Path, sdk: bool) -> Res<Deployment> {
    let mut d = deployment(root, &[SENDER, RECEIVER])?;
    if sdk {
        for c in [SENDER, RECEIVER] {
            let dir = d.agent_dir(c);
            d.agent(&[
                "vdxp",
                "enable",
                "--dir",
                &dir.to_string_lossy(),
                "--listen",
                "127.0.0.1:0",
            ])?;
        }
    }
    d.start_agents(&[SENDER, RECEIVER], true)?;
    Ok(d)
}

fn dms(d: &Deployment, code: &str) -> Res<SdkClient> {
    let dir = d.agent_dir(code);
    let secret = std::fs::read_to_string(dir.join("vdxp.secret"))?;
    let addr = std::fs::read_to_string(dir.join("run/vdxp.addr"))?;
    Ok(SdkClient::new(
        &format!("http://{}", addr.trim()),
        code,
        secret.trim().as_bytes(),
    ))
}

fn report(what: &str, d: &Deployment, len: u64, secs: f64) -> Value {
    let mib_s = len as f64 / MIB / secs;
    println!(
        "  {what:7} {:.0} MiB in {secs:.2} s = {mib_s:.1} MiB/s (upload start -> recipient's last byte, byte-identical)",
        len as f64 / MIB
    );
    let mut rss = serde_json::Map::new();
    for (role, name) in [
        ("hub", "hub"),
        ("sending agent", SENDER),
        ("receiving agent", RECEIVER),
    ] {
        let h = hwm(d, name);
        println!(
            "          {role:16} VmHWM {h:6.1} MiB {}",
            if h < TARGET_RSS_MIB { "ok" } else { "MISSED" }
        );
        rss.insert(role.into(), json!(h));
    }
    json!({"bytes": len, "seconds": secs, "mib_per_s": mib_s, "peak_rss_mib": rss})
}

fn native(root: &Path, file: &Path, len: u64, want: &[u8]) -> Res<Value> {
    let mut d = fresh(&root.join("native"), false)?;
    let http = reqwest::blocking::Client::builder().timeout(None).build()?;
    let api = |c: &str| -> Res<String> {
        Ok(
            std::fs::read_to_string(d.agent_dir(c).join("run/api.addr"))?
                .trim()
                .to_string(),
        )
    };
    let (sa, ra) = (api(SENDER)?, api(RECEIVER)?);
    let t = Instant::now();
    let r = http
        .post(format!(
            "http://{sa}/v1/documents?to={RECEIVER}&subject=Large&filename=big.zip"
        ))
        .body(reqwest::blocking::Body::sized(
            std::fs::File::open(file)?,
            len,
        ))
        .send()?;
    let v: Value = r.json()?;
    let id = v["id"].as_str().ok_or(format!("POST: {v}"))?.to_string();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let inbox: Value = http.get(format!("http://{ra}/v1/inbox")).send()?.json()?;
        if inbox
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["id"] == id.as_str())
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("native document not delivered within 900 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut body = http.get(format!("http://{ra}/v1/inbox/{id}/body")).send()?;
    let mut sink = HashSink(ring::digest::Context::new(&ring::digest::SHA256), 0);
    std::io::copy(&mut body, &mut sink)?;
    let secs = t.elapsed().as_secs_f64();
    if sink.0.finish().as_ref() != want {
        return Err("native: the recipient's copy differs".into());
    }
    let out = report("native", &d, len, secs);
    d.stop_all();
    Ok(out)
}

fn sdk(root: &Path, file: &Path, len: u64, want: &[u8]) -> Res<Value> {
    let mut d = fresh(&root.join("sdk"), true)?;
    let (mut a, mut b) = (dms(&d, SENDER)?, dms(&d, RECEIVER)?);
    let hash = unpadded(want);
    let to = serde_json::to_string(&[RECEIVER])?;
    let t = Instant::now();
    let v = a.send_edoc(
        &[
            ("servicetype", "eDoc"),
            ("messagetype", "edoc"),
            ("to", &to),
        ],
        Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(file)?,
        )),
        len,
        &hash,
    )?;
    if !is_ok(&v) {
        return Err(format!("sendEdoc: {v}").into());
    }
    let id = v["DocId"].as_str().unwrap_or_default().to_string();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let c = b.call("countReceiveEdoc", &[], poros_harness::sdk::Payload::None)?;
        if c["count"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err("package not delivered within 900 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut sink = HashSink(ring::digest::Context::new(&ring::digest::SHA256), 0);
    b.get_edoc_to(&id, &mut sink)?;
    let secs = t.elapsed().as_secs_f64();
    if sink.0.finish().as_ref() != want {
        return Err("SDK: the recipient's copy differs".into());
    }
    let out = report("SDK", &d, len, secs);
    d.stop_all();
    Ok(out)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("sdk bench failed: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let mib: u64 = std::env::var("POROS_SDK_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let len = mib << 20;
    let root = tempfile::Builder::new()
        .prefix("poros-bench-sdk-")
        .tempdir()?;
    let (native_file, pkg_file) = (root.path().join("big.zip"), root.path().join("big.edxml"));
    write_native(&native_file, len)?;
    write_package(&pkg_file, len)?;
    let pkg_len = std::fs::metadata(&pkg_file)?.len();
    let (nh, ph) = (sha256_file(&native_file)?, sha256_file(&pkg_file)?);
    println!(
        "sdk: {mib} MiB through the native API and through the SDK facade (fresh processes each)"
    );
    let n = native(root.path(), &native_file, len, nh.as_ref())?;
    let s = sdk(root.path(), &pkg_file, pkg_len, ph.as_ref())?;
    let ratio = s["mib_per_s"].as_f64().unwrap_or(0.0) / n["mib_per_s"].as_f64().unwrap_or(1.0);
    println!("  SDK / native throughput: {ratio:.2}");
    let out = json!({"native": n, "sdk": s, "sdk_over_native": ratio});
    let path = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    std::fs::write(
        Path::new(&path).join("bench-sdk.json"),
        serde_json::to_vec_pretty(&out)?,
    )?;
    Ok(())
}
