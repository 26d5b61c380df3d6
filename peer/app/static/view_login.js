/**
 * The login dialog: the control API is the owner's, so a 401 asks for the token (the
 * peer keeps it in an HttpOnly, SameSite=Strict cookie, set by the one-time link it
 * printed or by this form; no script here holds it after the form is sent).
 *
 * @module
 */
import { html, useEffect, useRef, useState } from "./html.js";
import { messageOf } from "./api.js";
import { login } from "./actions.js";
import { needLogin } from "./state.js";

/** The dialog, open while `needLogin` is true. */
export function LoginDialog() {
  const ref = useRef(/** @type {HTMLDialogElement | null} */ (null));
  const [token, setToken] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const open = needLogin.value;
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      setError("");
      d.showModal();
    } else if (!open && d.open) d.close();
  }, [open]);
  const submit = async (/** @type {Event} */ e) => {
    e.preventDefault();
    setBusy(true);
    try {
      await login(token.trim());
      setToken("");
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return html`
    <dialog id="login" class="login" aria-labelledby="login-h" ref=${ref}
      onCancel=${(/** @type {Event} */ e) => e.preventDefault()}>
      <form id="login-form" method="dialog" onSubmit=${submit}>
          <h2 id="login-h">Log in to this peer</h2>
          <p class="muted small">This peer's files and settings are its owner's. Open the one-time
            link the peer printed when it started (<code>p2p login</code> prints a new one), or
            paste its token (the file <code>control.token</code> in its data folder).</p>
          <label for="login-token">Token</label>
          <input id="login-token" name="token" type="password" autocomplete="off" spellcheck="false"
            required maxlength="200" value=${token}
            onInput=${(/** @type {any} */ e) => setToken(e.currentTarget.value)} />
          ${error ? html`<p id="login-error" class="login-error" role="alert">${error}</p>` : null}
          <div class="login-actions">
            <button type="submit" class="btn primary" id="login-submit" disabled=${busy}>Log in</button>
          </div>
        </form>
    </dialog>
  `;
}
