//! TLS helpers shared by the Redis handle and the RabbitMQ transport (both use rustls): reading
//! a CA file, and saying in plain words why a handshake failed.

use std::path::Path;

/// The PEM text of the CA certificate file at `path`, checked to hold at least one certificate.
/// The error names the path (it never holds a credential).
pub(crate) fn read_ca(path: &Path) -> Result<String, String> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| format!("TLS CA file {}: cannot read it: {e}", path.display()))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "TLS CA file {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            path.display()
        ));
    }
    Ok(pem)
}

/// Whether `url` asks for TLS: its scheme (`amqps`, `rediss`) is `secure_scheme`.
pub(crate) fn wants_tls(url: &str, secure_scheme: &str) -> bool {
    url.trim_start()
        .split_once("://")
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case(secure_scheme))
}

/// Why a TLS connection failed, in plain words, from the text of the client library's error
/// (lapin and redis-rs pass rustls' errors on as text inside I/O errors, so the text is what is
/// left to go by); `None` when it does not look like a TLS failure.
pub(crate) fn failure(error: &str) -> Option<&'static str> {
    const KNOWN: &[(&str, &str)] = &[
        (
            "UnknownIssuer",
            "the server's certificate is not signed by a trusted CA",
        ),
        (
            "not valid for name",
            "the server's certificate is not valid for the host name in the URL",
        ),
        (
            "NotValidForName",
            "the server's certificate is not valid for the host name in the URL",
        ),
        (
            "certificate expired",
            "the server's certificate has expired",
        ),
        ("Expired", "the server's certificate has expired"),
        (
            "not valid yet",
            "the server's certificate is not valid yet (check the clock)",
        ),
        (
            "native certificates",
            "no system root certificates could be loaded (install the system's CA bundle, e.g. \
             Debian's ca-certificates)",
        ),
        (
            "InvalidContentType",
            "the server did not answer with TLS (is this its plain-text port?)",
        ),
        (
            "invalid peer certificate",
            "the server's certificate was refused",
        ),
        (
            "received fatal alert",
            "the server refused the TLS handshake",
        ),
    ];
    KNOWN
        .iter()
        .find(|(needle, _)| error.contains(needle))
        .map(|(_, reason)| *reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_ca_file_or_names_it() {
        let dir = std::env::temp_dir().join(format!("promiscuous-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let err = read_ca(&missing).unwrap_err();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let err = read_ca(&not_pem).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
        let pem = dir.join("ca.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(read_ca(&pem).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn schemes_and_failures() {
        assert!(wants_tls("amqps://h/", "amqps") && wants_tls("AMQPS://h/", "amqps"));
        assert!(!wants_tls("amqp://h/", "amqps") && !wants_tls("rediss", "rediss"));
        assert_eq!(
            failure("IO error: invalid peer certificate: UnknownIssuer"),
            Some("the server's certificate is not signed by a trusted CA")
        );
        assert_eq!(failure("Connection refused (os error 111)"), None);
    }
}
