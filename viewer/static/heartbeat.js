// teleread viewer — "keep my claim alive": while the reader has this consultation open and holds
// its claim, claim it again before the lease runs out (re-claiming by the holder renews the lease,
// see service/worklist/claims.py `claim`). Never takes a claim the reader does not already hold.

import { api, t } from "../common.js";

const MIN_DELAY_MS = 30 * 1000;
const MAX_DELAY_MS = 5 * 60 * 1000;

/** Delay before the next renewal: half the remaining lease, between 30 s and 5 min. */
export function renewalDelay(expiresAt, now = Date.now()) {
  const remaining = Date.parse(expiresAt) - now;
  if (!Number.isFinite(remaining)) return MAX_DELAY_MS;
  return Math.min(MAX_DELAY_MS, Math.max(MIN_DELAY_MS, remaining / 2));
}

export class Heartbeat {
  constructor(consultationId, userId, report) {
    this.consultationId = consultationId;
    this.userId = userId;
    this.report = report;
    this.timer = null;
  }

  async start() {
    let result;
    try {
      result = await api(`/api/consultations/${this.consultationId}`);
    } catch (_err) {
      return;
    }
    const c = result.ok ? result.data : null;
    if (c && c.claimed_by_id === this.userId && c.claim_expires_at) this.schedule(c.claim_expires_at);
  }

  schedule(expiresAt) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.renew(), renewalDelay(expiresAt));
    document.getElementById("viewer").dataset.claimExpiresAt = expiresAt;
  }

  async renew() {
    let result;
    try {
      result = await api(`/api/consultations/${this.consultationId}/claim`, { method: "POST" });
    } catch (_err) {
      this.timer = setTimeout(() => this.renew(), MIN_DELAY_MS);
      return;
    }
    if (result.ok && result.data && result.data.claim_expires_at) {
      this.schedule(result.data.claim_expires_at);
    } else {
      const detail = (result.data && (result.data.detail || result.data.error)) || result.status;
      this.report(t("claim_lost", { detail }));
    }
  }
}
