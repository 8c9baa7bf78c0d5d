//! What a manifest grants: outbound HTTP hosts and limits, configuration
//! values and secrets. Resolving reads the host environment (`{ env = ... }`
//! values) and the files a manifest names (`ca_file`).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::files::read_in_folder;
use super::{Manifest, ValueKey};
use crate::sandbox::capabilities::{
    DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_MAX_RESPONSE_BYTES, Grants, HttpGrants, TrustedRoots, ValueSource, Values,
};

/// Highest `[http] max_concurrent_requests` a manifest may set.
const MAX_CONCURRENT_REQUESTS: usize = 256;

/// Largest `[http] ca_file` read (a bundle of a few hundred certificates fits).
const MAX_CA_FILE_BYTES: u64 = 1 << 20;

impl Manifest {
    /// What the manifest grants, reading `{ env = ... }` values through `env`
    /// (the host environment, in production) and files it names (`ca_file`)
    /// relative to `dir`, the plugins folder.
    pub fn grants(&self, dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Grants, String> {
        let keys = |map: &BTreeMap<ValueKey, ValueSource>| -> BTreeMap<String, ValueSource> {
            map.iter().map(|(k, v)| (k.0.clone(), v.clone())).collect()
        };
        let max_concurrent_requests = self.http.max_concurrent_requests.unwrap_or(DEFAULT_MAX_CONCURRENT_REQUESTS);
        if !(1..=MAX_CONCURRENT_REQUESTS).contains(&max_concurrent_requests) {
            return Err(format!(
                "[http] max_concurrent_requests = {max_concurrent_requests}: use 1 to {MAX_CONCURRENT_REQUESTS}"
            ));
        }
        let extra_roots = match &self.http.ca_file {
            Some(file) => read_in_folder(dir, file, MAX_CA_FILE_BYTES)
                .and_then(|pem| TrustedRoots::from_pem(&pem, &dir.join(file)))
                .map_err(|e| format!("[http] ca_file: {e}"))?,
            None => TrustedRoots::default(),
        };
        Ok(Grants {
            http: HttpGrants {
                allowed_hosts: self.http.allowed_hosts.clone(),
                max_response_bytes: self.http.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
                max_concurrent_requests,
                extra_roots,
            },
            values: Values::resolve(&keys(&self.config), &keys(&self.secrets), env)?,
        })
    }

    /// Files besides the plugin and this manifest that loading the plugin
    /// reads (the `[http] ca_file`), resolved against `dir`, the plugins
    /// folder (`..` taken away by its text). Hot reload watches them. A path
    /// that leaves the folder by its text (absolute, or through `..`) is
    /// never read, so not watched.
    pub fn files_read(&self, dir: &Path) -> Vec<PathBuf> {
        let inside = |file: &PathBuf| {
            let mut parts = Vec::new();
            for component in file.components() {
                match component {
                    Component::Normal(name) => parts.push(name),
                    Component::CurDir => {}
                    Component::ParentDir => {
                        parts.pop()?;
                    }
                    Component::RootDir | Component::Prefix(_) => return None,
                }
            }
            Some(parts.iter().fold(dir.to_path_buf(), |path, part| path.join(part)))
        };
        self.http.ca_file.iter().filter_map(inside).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::capabilities::{Host, HostDecision, Scheme};

    #[test]
    fn no_manifest_no_capabilities() {
        let m = Manifest::parse("").unwrap();
        assert_eq!(m.grants(Path::new("."), &|_| None).unwrap(), Grants::default());
    }

    #[test]
    fn parses_every_grant() {
        let m = Manifest::parse(
            r#"
            [http]
            allowed_hosts = [
                "https://api.cal.example",
                { host = "http://calendar.internal:8080", allow_private = true },
            ]
            max_response_bytes = 4096
            max_concurrent_requests = 3

            [config]
            base_url = "https://api.cal.example/v2"
            region = { env = "REGION", default = "eu" }

            [secrets]
            api_key = { env = "CAL_KEY" }
            "#,
        )
        .unwrap();
        let env = |name: &str| (name == "CAL_KEY").then(|| "sk_123456".to_owned());
        let grants = m.grants(Path::new("."), &env).unwrap();
        assert_eq!(grants.http.max_response_bytes, 4096);
        assert_eq!(grants.http.max_concurrent_requests, 3);
        let host = |n: &str| Host::Name(n.into());
        assert_eq!(grants.http.decide(Scheme::Https, &host("api.cal.example"), 443), HostDecision::Public);
        assert_eq!(grants.http.decide(Scheme::Http, &host("calendar.internal"), 8080), HostDecision::AnyAddress);
        assert_eq!(grants.http.decide(Scheme::Http, &host("api.cal.example"), 80), HostDecision::Denied);
        assert_eq!(grants.values.config["base_url"], "https://api.cal.example/v2");
        assert_eq!(grants.values.config["region"], "eu");
        assert_eq!(grants.values.secrets["api_key"].expose(), "sk_123456");
        let err = m.grants(Path::new("."), &|_| None).unwrap_err();
        assert!(err.contains("secret `api_key`") && err.contains("CAL_KEY"), "{err}");

        let none = Manifest::parse("[http]\nmax_concurrent_requests = 0\n").unwrap();
        let err = none.grants(Path::new("."), &|_| None).unwrap_err();
        assert_eq!(err, "[http] max_concurrent_requests = 0: use 1 to 256");
        let default = Manifest::parse("[http]\n").unwrap().grants(Path::new("."), &|_| None).unwrap();
        assert_eq!(default.http.max_concurrent_requests, DEFAULT_MAX_CONCURRENT_REQUESTS);
    }

    #[test]
    fn files_read_are_inside_the_folder_or_none() {
        let dir = Path::new("/srv/plugins");
        let read = |ca_file: &str| {
            let m = Manifest::parse(&format!("[http]\nca_file = \"{ca_file}\"\n")).unwrap();
            m.files_read(dir)
        };
        assert_eq!(read("certs/ca.pem"), [dir.join("certs/ca.pem")]);
        assert_eq!(read("./certs/../ca.pem"), [dir.join("ca.pem")]);
        for outside in ["/etc/ssl/ca.pem", "../ca.pem", "certs/../../ca.pem"] {
            assert!(read(outside).is_empty(), "{outside}");
        }
    }

    #[test]
    fn grant_errors_name_the_line_and_the_reason() {
        // (manifest, line, part of the error)
        let cases: &[(&str, usize, &str)] = &[
            ("[http]\nallowed_hosts = [\"api.example.com\"]\n", 2, "scheme://host[:port]"),
            ("[http]\nallowed_hosts = [\"https://a.example.com/path\"]\n", 2, "without a path"),
            ("[http]\nallowed_hosts = [{ host = \"https://a.b\", private = true }]\n", 2, "unknown field `private`"),
            ("[http]\nallowed_hosts = [42]\n", 2, "scheme://host[:port]"),
            ("[http]\nallow = []\n", 2, "unknown field `allow`"),
            ("[config]\nurl = { var = \"X\" }\n", 2, "unknown field `var`"),
            ("[config]\nurl = 3\n", 2, "a string, or { env"),
            ("[secrets]\n\"bad key\" = \"x\"\n", 2, "invalid key"),
            ("\n\n[secrets]\nk = { env = \"\" }\n", 4, "not an environment variable name"),
        ];
        for (text, line, needle) in cases {
            let err = Manifest::parse(text).unwrap_err();
            assert!(err.contains(&format!("line {line}")) && err.contains(needle), "{text:?}: {err}");
        }
    }
}
