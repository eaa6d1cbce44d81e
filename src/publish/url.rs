//! The broker address (`mqtt://host:port`, `mqtts://host:port`), parsed once where it enters:
//! the configuration for the appliance, the command line for the subscriber.

/// Broker address parsed from `mqtt.url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<BrokerUrl, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "broker url '{url}' must start with mqtt:// or mqtts://"
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("broker url '{url}': port '{p}' is not a number"))?,
            ),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() || host.contains('/') {
            return Err(format!("broker url '{url}' has no host"));
        }
        Ok(BrokerUrl {
            tls,
            host: host.trim_matches(['[', ']']).to_string(),
            port,
        })
    }
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            BrokerUrl::parse("mqtt://localhost:1884"),
            Ok(BrokerUrl {
                tls: false,
                host: "localhost".into(),
                port: 1884
            })
        );
        assert_eq!(
            BrokerUrl::parse("mqtts://b.example").map(|u| u.port),
            Ok(8883)
        );
        assert!(BrokerUrl::parse("tcp://x:1").is_err());
        assert!(BrokerUrl::parse("mqtt://x:port").is_err());
        assert!(BrokerUrl::parse("mqtt://:1883").is_err());
    }

    #[test]
    fn displays_as_parsed() {
        for url in [
            "mqtt://localhost:1884",
            "mqtts://b.example:8883",
            "mqtt://[::1]:1883",
        ] {
            assert_eq!(BrokerUrl::parse(url).expect("url").to_string(), url);
        }
    }
}
