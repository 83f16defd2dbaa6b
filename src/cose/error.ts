/** The error of the COSE layer: a key, algorithm or structure it cannot use. Node-free, so the browser build shares it. */
export class CoseError extends Error {
  override readonly name = 'CoseError';
}
