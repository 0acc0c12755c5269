//! The file as serde reads it: every key optional, validated values kept with their spans so
//! that a semantic error still points at its line. `deny_unknown_fields` everywhere: a
//! misspelt key is an error, never silently ignored.

use serde::Deserialize;
use toml::Spanned;

use crate::secret::Secret;

type S<T> = Spanned<T>;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) sip: RawSip,
    #[serde(default)]
    pub(crate) trunk: Vec<S<RawTrunk>>,
    #[serde(default)]
    pub(crate) agent: Vec<S<RawAgent>>,
    #[serde(default)]
    pub(crate) pool: Vec<S<RawPool>>,
    #[serde(default)]
    pub(crate) registrar: RawRegistrar,
    #[serde(default)]
    pub(crate) media: RawMedia,
    #[serde(default)]
    pub(crate) api: RawApi,
    #[serde(default)]
    pub(crate) calls: RawCalls,
    #[serde(default)]
    pub(crate) security: RawSecurity,
    #[serde(default)]
    pub(crate) store: RawStore,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSip {
    pub(crate) listen: Option<S<String>>,
    pub(crate) external_ip: Option<S<String>>,
    pub(crate) user_agent: Option<S<String>>,
    pub(crate) t1_ms: Option<S<u32>>,
    pub(crate) t2_ms: Option<S<u32>>,
    pub(crate) t4_ms: Option<S<u32>>,
    pub(crate) max_message_bytes: Option<S<u32>>,
    pub(crate) tcp_connections_per_source: Option<S<u32>>,
    pub(crate) tcp_idle_timeout_s: Option<S<u32>>,
    pub(crate) tcp_keepalive_s: Option<S<u32>>,
    pub(crate) tls_listen: Option<S<String>>,
    pub(crate) tls_cert: Option<S<String>>,
    pub(crate) tls_key: Option<S<String>>,
    pub(crate) tls_ca: Option<S<String>>,
    pub(crate) tls_verify: Option<S<bool>>,
    pub(crate) dns_servers: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrunk {
    pub(crate) name: S<String>,
    pub(crate) proxy: S<String>,
    pub(crate) domain: Option<S<String>>,
    pub(crate) username: Option<S<String>>,
    pub(crate) auth_username: Option<S<String>>,
    pub(crate) password: Option<S<Secret>>,
    pub(crate) password_env: Option<S<String>>,
    pub(crate) realm: Option<S<String>>,
    pub(crate) redirect_hosts: Option<S<Vec<S<String>>>>,
    pub(crate) register: Option<bool>,
    pub(crate) expires: Option<S<u32>>,
    pub(crate) transport: Option<S<String>>,
    pub(crate) codecs: Option<S<Vec<S<String>>>>,
    pub(crate) caller_id: Option<S<String>>,
    pub(crate) caller_name: Option<S<String>>,
    pub(crate) pai: Option<bool>,
    pub(crate) max_channels: Option<S<u32>>,
    pub(crate) max_cps: Option<S<u32>>,
    pub(crate) max_queue: Option<S<u32>>,
    pub(crate) strip_prefix: Option<S<String>>,
    pub(crate) e164: Option<bool>,
    pub(crate) country_code: Option<S<String>>,
    pub(crate) national_prefix: Option<S<String>>,
    pub(crate) international_prefix: Option<S<String>>,
    pub(crate) strip_plus: Option<bool>,
    pub(crate) dial_prefix: Option<S<String>>,
    pub(crate) keepalive: Option<S<String>>,
    pub(crate) keepalive_interval_s: Option<S<u32>>,
    pub(crate) register_retry_min_s: Option<S<u32>>,
    pub(crate) register_retry_max_s: Option<S<u32>>,
    pub(crate) dtmf: Option<S<String>>,
    pub(crate) srtp: Option<S<String>>,
    pub(crate) session_expires_s: Option<S<u32>>,
    pub(crate) min_se_s: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgent {
    pub(crate) extension: S<String>,
    pub(crate) password: Option<S<Secret>>,
    pub(crate) a1_hash: Option<S<Secret>>,
    pub(crate) allow: Option<S<Vec<S<String>>>>,
    pub(crate) codecs: Option<S<Vec<S<String>>>>,
    pub(crate) dtmf: Option<S<String>>,
    pub(crate) srtp: Option<S<String>>,
    pub(crate) transport: Option<S<String>>,
    pub(crate) contact: Option<S<String>>,
    pub(crate) max_expires: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub(crate) name: S<String>,
    pub(crate) agents: S<Vec<S<String>>>,
    pub(crate) strategy: Option<S<String>>,
    pub(crate) wrap_up_s: Option<S<u32>>,
    pub(crate) max_no_answer: Option<S<u32>>,
    pub(crate) agent_attempts: Option<S<u32>>,
    pub(crate) agent_mode: Option<S<String>>,
    pub(crate) abandon_after_ms: Option<S<u32>>,
    pub(crate) abandon_message: Option<S<String>>,
    pub(crate) login_paused: Option<bool>,
    // Session mode only.
    pub(crate) login_extension: Option<S<String>>,
    pub(crate) hangup_key: Option<S<String>>,
    pub(crate) connect_tone: Option<S<String>>,
    pub(crate) idle_audio: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRegistrar {
    pub(crate) domain: Option<S<String>>,
    pub(crate) realm: Option<S<String>>,
    pub(crate) min_expires: Option<S<u32>>,
    pub(crate) max_expires: Option<S<u32>>,
    pub(crate) nonce_ttl_s: Option<S<u32>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMedia {
    pub(crate) rtp_ports: Option<S<String>>,
    pub(crate) ringback: Option<S<String>>,
    pub(crate) media_timeout_s: Option<S<u32>>,
    pub(crate) latch_window_ms: Option<S<u32>>,
    pub(crate) record_dir: Option<S<String>>,
    pub(crate) ringback_dir: Option<S<String>>,
    pub(crate) pcap_dir: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub(crate) listen: Option<S<String>>,
    pub(crate) token: Option<S<Secret>>,
    pub(crate) token_env: Option<S<String>>,
    pub(crate) allowed_hosts: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCalls {
    pub(crate) originate_timeout_s: Option<S<u32>>,
    pub(crate) agent_ring_timeout_s: Option<S<u32>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecurity {
    pub(crate) max_auth_failures: Option<S<u32>>,
    pub(crate) ban_window_s: Option<S<u32>>,
    pub(crate) ban_s: Option<S<u32>>,
    pub(crate) ban_exempt: Option<S<Vec<S<String>>>>,
    pub(crate) max_requests_per_s: Option<S<u32>>,
    pub(crate) max_server_transactions: Option<S<u32>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub(crate) path: Option<S<String>>,
}
