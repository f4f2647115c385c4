import { actorIdOfDaprSegment, encodeActorId } from '../../runtime/state-keys.js';

// daprd decodes the id segment a client sends once and forwards it as it is: `%2541` arrives as `%41`, `%2554-9`
// as `%54-9`. The Dapr host read Express's route parameter, decoded a second time, so those reached `A` and `T-9`;
// the embedded actor API refuses them (actor id "%41" (sent as "%2541") is refused).
describe('actorIdOfDaprSegment: the actor id of the segment daprd forwards', () => {
  const forwarded = (sent: string): string => decodeURIComponent(sent); // what daprd does once

  test('%2541 and %2554-9 are refused as the embedded API refuses them, not read as A and T-9', () => {
    for (const sent of ['%2541', '%2554-9']) {
      const err = (() => {
        try {
          return actorIdOfDaprSegment(forwarded(sent));
        } catch (e) {
          return e;
        }
      })();
      expect(err).toMatchObject({ code: 'PORTAL_INVALID_ARGUMENT' });
      expect((err as Error).message).toContain(`actor id ${JSON.stringify(forwarded(sent))} is refused`);
    }
    expect(() => actorIdOfDaprSegment('%41')).toThrow(/send this id as "~JTQx"/);
  });

  test('a plain id and the wire forms of ids with "%" reach their own actor', () => {
    expect(actorIdOfDaprSegment(forwarded('T-9'))).toBe('T-9');
    expect(actorIdOfDaprSegment(forwarded('A'))).toBe('A');
    // any string is an id (checkActorId): one with a literal "%" travels in its wire form
    for (const id of ['%41', '%54-9', '50%', 'a/b']) {
      expect(actorIdOfDaprSegment(forwarded(encodeURIComponent(encodeActorId(id))))).toBe(id);
    }
    expect(encodeActorId('%41')).toBe('~JTQx');
  });
});
