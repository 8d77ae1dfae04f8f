// Small DOM helpers. User text only ever goes in as text nodes (textContent), never as HTML.

export const $ = (id) => document.getElementById(id);

/** `el('li', {className: 'x', dataset: {id: 1}}, 'text', child)` */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'attrs') for (const [name, v] of Object.entries(value)) node.setAttribute(name, v);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Says `text` to screen readers (politely), without showing it. */
export function announce(text) {
  const region = $('announcer');
  region.textContent = '';
  // A change after a tick is announced even when the text repeats.
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

let statusTimer = 0;
/** Shows `text` briefly in the status line (also announced: role=status). */
export function status(text, ms = 6000) {
  const line = $('status');
  line.textContent = text;
  line.classList.toggle('shown', Boolean(text));
  clearTimeout(statusTimer);
  if (text && ms) {
    statusTimer = setTimeout(() => {
      line.textContent = '';
      line.classList.remove('shown');
    }, ms);
  }
}

/** Opens a modal dialog; its [data-close] buttons and Escape close it; focus returns after. */
export function openDialog(dialog, first) {
  const opener = document.activeElement;
  if (!dialog.dataset.wired) {
    dialog.dataset.wired = '1';
    for (const button of dialog.querySelectorAll('[data-close]')) {
      button.addEventListener('click', () => closeDialog(dialog));
    }
    dialog.addEventListener('close', () => {
      const back = dialog.returnFocus;
      if (back && back.isConnected) setTimeout(() => focus(back), 0);
    });
  }
  dialog.returnFocus = opener;
  if (!dialog.open) dialog.showModal();
  if (first) first.focus();
}

/**
 * Closes a dialog after the event that asked for it. (Closed during a mouse click, Chromium
 * left the element focused afterwards deaf to typing: keydown arrived, no text went in.)
 */
export function closeDialog(dialog) {
  setTimeout(() => dialog.close(), 0);
}

/**
 * Focuses `element`, afresh when it has focus already: after a modal dialog closed, Chromium
 * gave the focus back to a text box whose caret took no typing until it was focused again.
 */
export function focus(element) {
  if (document.activeElement === element) element.blur();
  element.focus();
}
