export declare const ROOT: string;
export declare const ENTRY: string;
export declare const OUTFILE: string;
export interface BrowserBundle {
  text: string;
  bytes: number;
  gzipBytes: number;
  inputs: string[];
  bufferUsers: string[];
  usesBuffer: boolean;
}
export declare function bundleBrowser(options?: { minify?: boolean }): Promise<BrowserBundle>;
