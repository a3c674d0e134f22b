import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from "fastify";
import type { Decision } from "./decision.js";
import { checkHttpRequest, denialBody, denialHeaders, denialStatus, type IntegrationOptions, type RouteLimit } from "./http.js";

/** A route's `config: { ratelimitd }`: its own limits, or `false` for none. */
export type RouteConfig = { readonly limits?: readonly RouteLimit<FastifyRequest>[] } | false;

declare module "fastify" {
  interface FastifyContextConfig {
    ratelimitd?: RouteConfig;
  }
  interface FastifyRequest {
    /** ratelimitd's decision for this request; null when none was made. */
    rateLimit: Decision | null;
  }
}

export interface FastifyOptions extends IntegrationOptions<FastifyRequest> {
  /**
   * Checks routes without `config.ratelimitd` too, with `limits` (and the
   * policy's rules). Default true.
   */
  readonly global?: boolean;
  /**
   * Answers a denied request. Default: 429 over a limit, 503 when the
   * service could not decide and the on-error policy is closed, with the
   * decision's headers and `Retry-After`.
   */
  readonly handler?: (request: FastifyRequest, reply: FastifyReply, decision: Decision) => unknown;
}

/**
 * Fastify plugin, an `onRequest` hook: one `CheckLimit` per request. A
 * route's `config: { ratelimitd: { limits } }` replaces the plugin's
 * `limits` for it, `config: { ratelimitd: false }` turns checking off (the
 * @fastify/rate-limit convention). Registered without encapsulation, so
 * it applies to every route of the instance it is registered on.
 */
const plugin: FastifyPluginCallback<FastifyOptions> = (instance, options, done) => {
  instance.decorateRequest("rateLimit", null);
  instance.addHook("onRequest", async (request, reply) => {
    const route = request.routeOptions.config.ratelimitd;
    if (route === false || (route === undefined && options.global === false) || options.skip?.(request) === true) {
      return;
    }
    const decision = await checkHttpRequest(request, request.raw, route?.limits ?? options.limits ?? [], options);
    request.rateLimit = decision;
    if (decision.allowed) {
      reply.headers(decision.headers);
      return;
    }
    if (options.handler !== undefined) {
      reply.headers(decision.headers);
      await options.handler(request, reply, decision);
    } else {
      reply.code(denialStatus(decision)).headers(denialHeaders(decision)).type("text/plain").send(denialBody(decision));
    }
    return reply;
  });
  done();
};

// What fastify-plugin does: no encapsulation, a name in errors and logs.
Object.assign(plugin, {
  [Symbol.for("skip-override")]: true,
  [Symbol.for("fastify.display-name")]: "@ratelimitd/client",
});

export { plugin as fastify };
