// The message box: Enter sends, Shift+Enter makes a new line, and an input method editor
// (Korean, Japanese, Chinese) is never interrupted.
//
// While a composition is open the text in the box is not final, so a keydown that belongs to
// it never sends: `isComposing` says so, keyCode 229 is what browsers report for a key the IME
// took (Safari sends the Enter that ends a composition as 229 *before* compositionend, with
// isComposing false), and our own flag covers compositionstart..compositionend.
//
// What the Enter that ends a composition means differs by language:
// - Korean has no candidate to pick: Enter commits the last syllable and should send. Browsers
//   deliver it differently: Chromium on macOS and Linux as keydown(composing) → compositionend →
//   keydown(Enter), Windows' IME and Safari without that last keydown. So an Enter seen during a
//   composition is remembered, and when the composition ends with Hangul the box is sent
//   shortly after (GRACE), unless the plain Enter that some platforms add comes first and sends
//   it at once. Whichever comes first sends; the other finds nothing to do. One Enter, the
//   whole text, sent once.
// - Japanese and Chinese: Enter confirms the conversion candidate; sending then would cut the
//   message short, so it only confirms, as in every chat app for those languages.

/** How long an Enter that ended a Korean composition waits for the plain Enter some platforms add. */
const GRACE = 300;

const HANGUL = /[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff]/;

export function composer(textarea, { onSend, onTyping }) {
  let composing = false;
  let enterWhileComposing = false;
  let pending = 0;

  textarea.addEventListener('compositionstart', () => {
    composing = true;
    enterWhileComposing = false;
  });
  textarea.addEventListener('compositionend', (event) => {
    composing = false;
    const korean = HANGUL.test(event.data || '');
    if (enterWhileComposing && korean) {
      clearTimeout(pending);
      pending = setTimeout(() => submit({ enterCommitted: true }), GRACE);
    }
    enterWhileComposing = false;
  });
  textarea.addEventListener('blur', () => {
    composing = false;
    enterWhileComposing = false;
  });

  textarea.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' && event.keyCode !== 229) return;
    if (event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.isComposing || event.keyCode === 229 || composing) {
      // Part of the composition (the key may not even be Enter when 229: Safari's Enter is).
      if (event.key === 'Enter' || event.code === 'Enter' || event.code === 'NumpadEnter') enterWhileComposing = true;
      return;
    }
    event.preventDefault();
    clearTimeout(pending);
    submit();
  });

  textarea.addEventListener('input', () => {
    fit();
    if (textarea.value && onTyping) onTyping();
  });

  function fit() {
    textarea.style.height = 'auto';
    textarea.style.height = `${Math.min(textarea.scrollHeight, 160)}px`;
  }

  /**
   * Sends what is in the box (not while composing), then empties it. After an Enter that ended
   * a composition, a line break that Enter may have put at the end is not part of the message.
   */
  function submit({ enterCommitted = false } = {}) {
    if (composing) return;
    let text = textarea.value;
    if (enterCommitted) text = text.replace(/\r?\n$/, '');
    if (!text.trim()) return;
    textarea.value = '';
    fit();
    onSend(text);
  }

  return { submit, fit };
}
