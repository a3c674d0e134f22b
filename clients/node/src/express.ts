import type { NextFunction, Request, RequestHandler, Response } from "express";
import type { Decision } from "./decision.js";
import { checkHttpRequest, denialBody, denialHeaders, denialStatus, type IntegrationOptions } from "./http.js";

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The decision of ratelimitd's middleware (`requestPropertyName`). */
      rateLimit?: Decision;
    }
  }
}

export interface ExpressOptions extends IntegrationOptions<Request> {
  /**
   * Answers a denied request. Default: 429 over a limit, 503 when the
   * service could not decide and the on-error policy is closed, with the
   * decision's headers and `Retry-After`.
   */
  readonly handler?: (req: Request, res: Response, next: NextFunction, decision: Decision) => void;
  /** Where the decision is put on the request. Default `rateLimit`. */
  readonly requestPropertyName?: string;
}

/**
 * Express middleware: one `CheckLimit` per request (skipped requests make
 * none), the decision's headers on every response, the decision on
 * `req.rateLimit`, denied requests answered by `handler`. The service
 * refusing the request (a bad limit, say) goes to `next(error)`.
 */
export function express(options: ExpressOptions): RequestHandler {
  const property = options.requestPropertyName ?? "rateLimit";
  const limits = options.limits ?? [];
  return (req, res, next) => {
    if (options.skip?.(req) === true) {
      next();
      return;
    }
    checkHttpRequest(req, req, limits, options).then((decision) => {
      (req as unknown as Record<string, unknown>)[property] = decision;
      if (decision.allowed) {
        res.set(decision.headers);
        next();
      } else if (options.handler !== undefined) {
        res.set(decision.headers);
        options.handler(req, res, next, decision);
      } else {
        res.status(denialStatus(decision)).set(denialHeaders(decision)).type("text/plain").send(denialBody(decision));
      }
    }, next);
  };
}
