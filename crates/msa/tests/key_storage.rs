//! Where the keys live: the data directory is 0700, every file in it 0600, and the token signing
//! and personal-data keys are stored encrypted under the master key (generated into the data
//! directory for a bare run, or given by the operator); a wrong master key stops the start.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::api::Api;
use common::msa;

/// Every file of `dir`, as bytes (the SQLite files with their WAL).
fn everything_in(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn keys_are_private_files_and_encrypted_under_the_master_key() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let api = Api::start(&["--data-dir", data.to_str().unwrap()]);
    let ada = api.person("Ada").await;
    assert!(!ada.token.is_empty());
    assert!(
        api.server.process.log().contains("NO MASTER KEY GIVEN"),
        "a bare run says loudly that it generated the master key"
    );

    assert_eq!(mode(&data), 0o700, "the data directory");
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    assert!(data.join("master.key").exists());
    assert!(data.join("user.keys.sqlite").exists());

    // Ed25519 PKCS#8 as ring makes it starts with these bytes (base64): the signing key in clear.
    let stored = everything_in(&data);
    assert!(
        !contains(&stored, "MFMCAQEwBQYDK2VwBCIEI"),
        "a signing key in clear"
    );
    assert!(
        contains(&stored, "mk1:"),
        "keys sealed under the master key"
    );
}

#[tokio::test]
async fn the_operators_master_key_opens_the_keys_and_another_does_not() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let key_file = root.path().join("master.key");
    std::fs::write(&key_file, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
    let storage = [
        "--data-dir",
        data.to_str().unwrap(),
        "--master-key-file",
        key_file.to_str().unwrap(),
    ];
    let mut api = Api::start(&storage);
    api.person("Ada").await;
    assert!(!api.server.process.log().contains("NO MASTER KEY GIVEN"));
    assert!(!data.join("master.key").exists(), "none generated");
    api.server.process.kill();
    // The same key: the keys open (the signing key signs, Ada's data reads).
    api = Api::start(&storage);
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            "/v1/auth/token",
            "",
            Some(serde_json::json!({"email": "ada@example.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, 200);
    api.server.process.kill();

    // Another key: the start stops and says why.
    std::fs::write(&key_file, "HwECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let output = msa()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(storage)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("MSA_MASTER_KEY_FILE"), "{stderr}");
}

/// The `kid` in an access token's header.
fn kid_of(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&json).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_signing_key_rotates_with_both_keys_served_until_the_old_one_is_retired() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let storage = ["--data-dir", data.to_str().unwrap()];
    let mut api = Api::start(&storage);
    let ada = api.person("Ada").await;
    let old_kid = kid_of(&ada.token);
    api.server.process.kill();

    let users = |args: &[&str]| {
        let mut command = msa();
        command.arg("users").args(args).args(storage);
        command.output().unwrap()
    };
    let rotated = users(&["rotate-signing-key"]);
    common::succeeded(&rotated);
    let listed = String::from_utf8_lossy(&rotated.stdout).to_string();
    assert!(listed.contains(&old_kid), "{listed}");
    // The newest key cannot be retired.
    let new_kid = listed
        .lines()
        .find(|line| line.contains("(new"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(!users(&["retire-signing-key", &new_kid]).status.success());

    api = Api::start(&storage);
    let jwks: serde_json::Value =
        reqwest::get(format!("{}/.well-known/jwks.json", api.server.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let kids: Vec<_> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(
        kids,
        [serde_json::json!(old_kid), serde_json::json!(new_kid)]
    );
    // Tokens of the old key still verify; new ones are signed with the new key.
    assert_eq!(api.get(&ada, "/v1/users/me").await.0, 200);
    let (_, tokens) = api
        .call(
            reqwest::Method::POST,
            "/v1/auth/token",
            "",
            Some(serde_json::json!({"email": "ada@example.com", "password": "correct horse battery"})),
        )
        .await;
    let fresh = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(kid_of(&fresh), new_kid);
    api.server.process.kill();

    // Retired: the old key's tokens are refused, the new key's are not.
    common::succeeded(&users(&["retire-signing-key", &old_kid]));
    api = Api::start(&storage);
    assert_eq!(api.get(&ada, "/v1/users/me").await.0, 401);
    assert_eq!(
        api.call(reqwest::Method::GET, "/v1/users/me", &fresh, None)
            .await
            .0,
        200
    );
}
