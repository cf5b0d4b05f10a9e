// chromium.mjs — the browser the dashboard's browser tests drive: Debian's
// headless Chromium (never a downloaded one) with nothing running in the
// background that could reach past 127.0.0.1.

/** The Chromium binary (`BPM_CHROMIUM` overrides). */
export const CHROMIUM = process.env.BPM_CHROMIUM ?? '/usr/bin/chromium';

/** Its flags: headless, no sandbox (containers), no background traffic. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
