/**
 * The keys that appear more than once in one object of the JSON text `text`, as JSON Pointer-like paths
 * (`/b/c` for a second `c` in the object at key `b`; array items are not indexed). JSON.parse keeps the last of
 * duplicates, so only the raw text shows them. `text` must be valid JSON.
 */
export function duplicateKeys(text: string): string[] {
  const out: string[] = [];
  // per open object or array: the keys seen (null for an array) and the path of the value it is
  const stack: Array<{ keys: Set<string> | null; path: string }> = [];
  let expectKey = false;
  let lastKey = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top?.keys) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) out.push(`${top.path}/${key}`);
        top.keys.add(key);
        lastKey = key;
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      const top = stack[stack.length - 1];
      const path = top === undefined ? '' : top.keys ? `${top.path}/${lastKey}` : top.path;
      stack.push({ keys: c === '{' ? new Set() : null, path });
      expectKey = c === '{';
    } else if (c === '}' || c === ']') stack.pop();
    else if (c === ',') expectKey = stack[stack.length - 1]?.keys != null;
  }
  return out;
}
