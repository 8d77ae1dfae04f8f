// The message box: Enter sends, Shift+Enter makes a new line, and an input method editor
// (Korean, Japanese, Chinese) is never interrupted.
//
// While a composition is open the text in the box is not final, so Enter must not send:
// `isComposing` says so on the keydown, keyCode 229 is what browsers report for a key the IME
// took (Safari sends the Enter that ends a composition as 229 *before* compositionend, with
// isComposing false), and our own flag covers the span between compositionstart and
// compositionend. Chromium delivers the Enter that ends a Korean composition twice:
// keydown(isComposing, 229) → compositionend → keydown(Enter): the first is ignored, the
// second sends the whole text — one Enter, the last syllable included, sent once. A Japanese
// conversion's Enter gives only the first, so it just confirms the conversion, as it should.

export function composer(textarea, { onSend, onTyping }) {
  let composing = false;

  textarea.addEventListener('compositionstart', () => {
    composing = true;
  });
  textarea.addEventListener('compositionend', () => {
    composing = false;
  });
  textarea.addEventListener('blur', () => {
    composing = false;
  });

  textarea.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' || event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.isComposing || event.keyCode === 229 || composing) return;
    event.preventDefault();
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

  /** Sends what is in the box (not while composing), then empties it. */
  function submit() {
    if (composing) return;
    const text = textarea.value;
    if (!text.trim()) return;
    textarea.value = '';
    fit();
    onSend(text);
  }

  return { submit, fit };
}
