// The order service's two halves: the publisher (the shop's checkout) and the
// billing handler, which rejects bad orders by throwing: the daemon retries
// them and, after the policy's last attempt, moves them to the handler's
// dead-letter queue with the handler's error text.

export const CHANNEL = 'shop.orders';
export const HANDLER_ID = 'node-billing';
// Three attempts in all, 50 ms apart: a bad order is dead-lettered in about 0.1 s.
export const POLICY = { maxRetries: 2, initialBackoffMs: 50, maxBackoffMs: 50, jitter: 0 };

export const ORDERS = [
  { id: 1001, item: 'widget', quantity: 2, unitPrice: 9.99 },
  { id: 1002, item: 'gadget', quantity: 1, unitPrice: 24.5 },
  { id: 1003, item: 'widget', quantity: 0, unitPrice: 9.99 }, // bad: no quantity
  { id: 1004, item: 'gizmo', quantity: 3, unitPrice: 4 },
  { id: 1005, item: '', quantity: 1, unitPrice: 12 }, // bad: no item
];

/** Publishes the orders in one batch; resolves to their entry ids. */
export function publishOrders(publisher, runId) {
  return publisher.publishBatch(CHANNEL, ORDERS.map((order) => ({
    payload: JSON.stringify(order),
    contentType: 'application/json',
    headers: { 'x-run': runId },
    correlationId: `order-${order.id}`,
  })));
}

function validate(order) {
  if (!order.item) return 'order has no item';
  if (!(order.quantity > 0)) return `quantity ${order.quantity} is not positive`;
  return null;
}

/**
 * The billing handler: `billed(order, total)` for a good order; a bad one
 * throws (its NACK carries the text), so it ends in the DLQ. `failed` sees
 * each failed attempt.
 */
export function billingHandler({ billed, failed }) {
  return async (message) => {
    const order = message.json();
    const problem = validate(order);
    if (problem !== null) {
      failed(order, message.attempt, message.maxAttempts, problem);
      const err = new Error(problem);
      err.code = 'E_INVALID_ORDER';
      throw err;
    }
    billed(order, (order.quantity * order.unitPrice).toFixed(2));
  };
}
