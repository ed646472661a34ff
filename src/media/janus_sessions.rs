//! The Admin API's token and session requests: what revokes a participant's access and closes
//! its PeerConnections.

use super::janus::{core_code, ignore, numbers, strings, JanusAdmin, JanusError, VIDEOROOM};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

impl JanusAdmin {
    /// Admits a token to Janus's API (for the VideoRoom plugin only).
    pub async fn add_token(&self, token: &SecretString) -> Result<(), JanusError> {
        self.call(
            "add_token",
            json!({"token": token.expose_secret(), "plugins": [VIDEOROOM]}),
        )
        .await
        .map(drop)
    }

    /// Revokes a token; one Janus does not hold is no error.
    pub async fn remove_token(&self, token: &SecretString) -> Result<(), JanusError> {
        ignore(
            self.call("remove_token", json!({"token": token.expose_secret()}))
                .await
                .map(drop),
            &[core_code::TOKEN_NOT_FOUND],
        )
    }

    /// The tokens Janus holds.
    pub async fn tokens(&self) -> Result<Vec<String>, JanusError> {
        let answer = self.call("list_tokens", json!({})).await?;
        Ok(strings(&answer["data"]["tokens"], "token"))
    }

    /// The node's sessions.
    pub async fn sessions(&self) -> Result<Vec<u64>, JanusError> {
        let answer = self.call("list_sessions", json!({})).await?;
        Ok(numbers(&answer["sessions"]))
    }

    /// A session's handles; none when the session is gone.
    pub async fn handles(&self, session: u64) -> Result<Vec<u64>, JanusError> {
        match self
            .call("list_handles", json!({"session_id": session}))
            .await
        {
            Ok(answer) => Ok(numbers(&answer["handles"])),
            Err(JanusError::Refused {
                code: core_code::SESSION_NOT_FOUND,
                ..
            }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The token a handle's session was opened with (`None`: the handle is gone).
    pub async fn handle_token(
        &self,
        session: u64,
        handle: u64,
    ) -> Result<Option<String>, JanusError> {
        match self
            .call(
                "handle_info",
                json!({"session_id": session, "handle_id": handle}),
            )
            .await
        {
            Ok(answer) => Ok(answer["info"]["token"].as_str().map(str::to_string)),
            Err(JanusError::Refused {
                code: core_code::SESSION_NOT_FOUND | core_code::HANDLE_NOT_FOUND,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The stream files a publisher's handle records into: `(mindex, file name)` of each stream
    /// being recorded (none when the handle is gone or records nothing).
    pub async fn recording_files(
        &self,
        session: u64,
        handle: u64,
    ) -> Result<Vec<(i64, String)>, JanusError> {
        match self
            .call(
                "handle_info",
                json!({"session_id": session, "handle_id": handle}),
            )
            .await
        {
            Ok(answer) => Ok(answer["info"]["plugin_specific"]["streams"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| Some((s["mindex"].as_i64()?, s["recording"].as_str()?.to_string())))
                .collect()),
            Err(JanusError::Refused {
                code: core_code::SESSION_NOT_FOUND | core_code::HANDLE_NOT_FOUND,
                ..
            }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Closes a handle's PeerConnection (the browser sees it at once).
    pub async fn hangup(&self, session: u64, handle: u64) -> Result<(), JanusError> {
        ignore(
            self.call(
                "hangup_webrtc",
                json!({"session_id": session, "handle_id": handle}),
            )
            .await
            .map(drop),
            &[core_code::SESSION_NOT_FOUND, core_code::HANDLE_NOT_FOUND],
        )
    }

    /// Ends a session and all its handles.
    pub async fn destroy_session(&self, session: u64) -> Result<(), JanusError> {
        ignore(
            self.call("destroy_session", json!({"session_id": session}))
                .await
                .map(drop),
            &[core_code::SESSION_NOT_FOUND],
        )
    }
}
