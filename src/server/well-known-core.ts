/** /.well-known/core (RFC 6690 §4): the links of the resources a server offers. */
import { ResponseCode } from '../coap/codes.js';
import { ContentFormat } from '../coap/content-format.js';
import { filterLinks, serializeLinks, type Link } from '../coap/link-format.js';
import type { LinkAttributes, ResourceDefinition } from './resource.js';
import type { Router } from './router.js';

export function wellKnownCoreResource(links: () => Link[]): ResourceDefinition {
  return {
    path: '/.well-known/core',
    hidden: true,
    ct: ContentFormat.LinkFormat,
    handlers: {
      GET: (request) => ({
        code: ResponseCode.Content,
        contentFormat: ContentFormat.LinkFormat,
        payload: serializeLinks(filterLinks(links(), [...request.query])),
      }),
    },
  };
}

/** The links of the router's resources, hidden ones left out, each subtree's own links added. */
export function resourceLinks(router: Router): Link[] {
  const links: Link[] = [];
  for (const resource of router.resources()) {
    if (!resource.hidden) links.push(toLink(resource.path, { ...resource, obs: resource.obs ?? Boolean(resource.observable) }));
    for (const below of resource.listLinks?.() ?? []) links.push(toLink(below.path, below));
  }
  return links.sort((a, b) => a.href.localeCompare(b.href));
}

function toLink(path: string, attributes: LinkAttributes): Link {
  const attrs: Array<[string, string | true]> = [];
  const many = (name: string, v: string | number | Array<string | number> | undefined): void => {
    if (v === undefined) return;
    attrs.push([name, Array.isArray(v) ? v.join(' ') : String(v)]);
  };
  many('rt', attributes.rt);
  many('if', attributes.if);
  many('ct', attributes.ct);
  if (attributes.sz !== undefined) attrs.push(['sz', String(attributes.sz)]);
  if (attributes.title !== undefined) attrs.push(['title', attributes.title]);
  if (attributes.obs) attrs.push(['obs', true]);
  const href = '/' + path.replace(/^\/+/, '');
  return { href, attributes: attrs };
}
