//! A test CA and a certificate it signs, made with the `openssl` command (Debian `openssl`)
//! in the test directory: what the TLS interop tests trust and present.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::HarnessError;

/// The files [`make`] wrote.
#[derive(Debug, Clone)]
pub struct Certs {
    /// The CA certificate, PEM.
    pub ca: PathBuf,
    /// The leaf certificate, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), HarnessError> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| HarnessError::Setup(format!("running openssl: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(HarnessError::Setup(format!(
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    )))
}

/// A CA (`<stem>-ca.pem`) and a server certificate (`<stem>.pem`, `<stem>.key`) for
/// `subject_alt_names` (`DNS:sip.example.test`, `IP:127.0.0.1`), valid two days.
pub fn make(dir: &Path, stem: &str, subject_alt_names: &[&str]) -> Result<Certs, HarnessError> {
    let ca_key = format!("{stem}-ca.key");
    let ca = format!("{stem}-ca.pem");
    let key = format!("{stem}.key");
    let csr = format!("{stem}.csr");
    let cert = format!("{stem}.pem");
    let ext = format!("{stem}.ext");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            "/CN=dialer test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    )?;
    let cn = subject_alt_names
        .first()
        .and_then(|n| n.split_once(':'))
        .map_or("test", |(_, v)| v);
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={cn}"),
        ],
    )?;
    std::fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName={}\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
            subject_alt_names.join(",")
        ),
    )
    .map_err(|e| HarnessError::Setup(format!("writing {ext}: {e}")))?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    )?;
    Ok(Certs {
        ca: dir.join(ca),
        cert: dir.join(cert),
        key: dir.join(key),
    })
}
