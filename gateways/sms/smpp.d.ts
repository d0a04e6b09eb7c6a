/**
 * Types for the parts of the `smpp` package (0.5.x) this repository uses; the package ships no
 * types and DefinitelyTyped has none. Field names are those of the SMPP specification.
 */
declare module "smpp" {
  import { EventEmitter } from "node:events";
  import type { Server as NetServer, Socket } from "node:net";

  /**
   * short_message or message_payload as the package hands it over after decoding: the user data
   * header split into its information elements (each a Buffer starting with the IE id), and the
   * text decoded by data_coding (a Buffer when the package has no decoder for it).
   */
  export interface DecodedMessage {
    udh?: Buffer[];
    message: string | Buffer;
  }

  export type PduOptions = Record<string, unknown>;

  export class PDU {
    constructor(command: string, options?: PduOptions);
    /** Parses one whole PDU (header included). */
    constructor(buffer: Buffer);
    command: string;
    command_id: number;
    command_status: number;
    sequence_number: number;
    isResponse(): boolean;
    /** The response to this request, same sequence number. */
    response(options?: PduOptions): PDU;
    toBuffer(): Buffer;

    system_id?: string;
    password?: string;
    system_type?: string;
    message_id?: string;
    service_type?: string;
    source_addr_ton?: number;
    source_addr_npi?: number;
    source_addr?: string;
    dest_addr_ton?: number;
    dest_addr_npi?: number;
    destination_addr?: string;
    esm_class?: number;
    protocol_id?: number;
    priority_flag?: number;
    registered_delivery?: number;
    data_coding?: number | null;
    short_message?: DecodedMessage | Buffer;
    message_payload?: DecodedMessage | Buffer;
    receipted_message_id?: string;
    message_state?: number;
    network_error_code?: Buffer;
    sar_msg_ref_num?: number;
    sar_total_segments?: number;
    sar_segment_seqnum?: number;
  }

  export interface SessionOptions {
    url?: string;
    host?: string;
    port?: number;
    tls?: boolean;
    socket?: Socket;
    auto_enquire_link_period?: number;
  }

  type ResponseCallback = (pdu: PDU) => void;

  export class Session extends EventEmitter {
    constructor(options: SessionOptions);
    readonly socket: Socket;
    /** Sends a request (a sequence number is assigned) or a response; false when the socket is not writable. */
    send(pdu: PDU, responseCallback?: ResponseCallback, sendCallback?: ResponseCallback): boolean;
    close(callback?: () => void): void;
    destroy(callback?: () => void): void;
    pause(): void;
    resume(): void;
    bind_transceiver(options: PduOptions, responseCallback?: ResponseCallback): boolean;
    submit_sm(options: PduOptions, responseCallback?: ResponseCallback): boolean;
    deliver_sm(options: PduOptions, responseCallback?: ResponseCallback): boolean;
    enquire_link(options?: PduOptions, responseCallback?: ResponseCallback): boolean;
    unbind(options?: PduOptions, responseCallback?: ResponseCallback): boolean;
  }

  export class Server extends NetServer {
    readonly sessions: Session[];
  }

  export function connect(options: SessionOptions | string, listener?: () => void): Session;
  export function createServer(options: Record<string, unknown>, listener?: (session: Session) => void): Server;
  export function createServer(listener?: (session: Session) => void): Server;

  export interface Codec {
    match(value: string): boolean;
    encode(value: string): Buffer;
    decode(value: Buffer): string;
  }
  /**
   * The text codecs the package applies to short_message by data_coding, by name (ASCII is
   * GSM 03.38, LATIN1, UCS2); `default` names the one used for data_coding 0.
   */
  export const encodings: { readonly default: string; readonly [name: string]: Codec | string };
  /** GSM 03.38 with the national shift tables the package knows (table 0 = default alphabet). */
  export const gsmCoder: { encode(value: string, table: number): Buffer; decode(value: Buffer, table: number): string };
  export const consts: { ENCODING: Record<string, number>; ESM_CLASS: Record<string, number> };
  export const errors: Record<string, number>;
}
