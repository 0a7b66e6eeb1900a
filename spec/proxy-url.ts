// What a proxy URL must look like, shared by validation (spider.settings.proxy)
// and the local CLI (HTTP_PROXY / HTTPS_PROXY).

/** The problem with a proxy URL, or undefined when it is an http(s) proxy URL without path or query. */
export function proxyUrlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "not a valid URL (e.g. http://proxy.internal:3128)";
  }
  if (u.protocol !== "http:" && u.protocol !== "https:")
    return `must be an http:// or https:// proxy URL, got ${u.protocol.replace(/:$/, "")}`;
  if ((u.pathname !== "/" && u.pathname !== "") || u.search || u.hash) return "a proxy URL has no path or query";
  return undefined;
}

/** The problem with a NO_PROXY entry (a name, `.name`, `*.name`, an IP or CIDR, optional `:port`, or `*`), or undefined. */
export function noProxyEntryProblem(entry: string): string | undefined {
  if (entry.includes("://")) return "a host, domain, IP address or CIDR, without a scheme";
  if (/[\s,]/.test(entry)) return "one entry per list item (no spaces or commas)";
  const host = entry.replace(/:\d{1,5}$/, "").replace(/^\[|\]$/g, "");
  if (!/^(\*|(\*?\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?|[0-9a-f:.]+(\/\d{1,3})?)$/i.test(host))
    return `not a host, domain, IP address or CIDR: ${JSON.stringify(entry)}`;
  return undefined;
}
