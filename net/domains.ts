// Host and domain matching for offsite filtering (Scrapy's allowed_domains) and
// `restrict: sameDomain` link rules. Registrable domains come from the Public
// Suffix List via tldts (what Crawlee uses): `news.abc.de` and `shop.abc.de`
// share `abc.de`; `alice.github.io` and `bob.github.io` do not.
import { getDomain } from "tldts";

/**
 * The registrable domain of a host (eTLD+1, private suffixes included), or the
 * host itself for IP literals, single labels and bare public suffixes.
 */
export function registrableDomain(host: string): string {
  const h = host
    .toLowerCase()
    .replace(/^\[|\]$/g, "")
    .replace(/\.$/, "");
  return getDomain(h, { allowPrivateDomains: true }) ?? h;
}

/** Host matches an allowedDomains entry: equal or a subdomain (Scrapy's url_is_from_any_domain). */
export function hostAllowed(host: string, domains: readonly string[]): boolean {
  // A fully qualified name's trailing dot names the same host (`example.com.`).
  const h = host.toLowerCase().replace(/\.$/, "");
  return domains.some((d) => {
    const dom = d.toLowerCase().replace(/\.$/, "");
    return h === dom || h.endsWith(`.${dom}`);
  });
}
