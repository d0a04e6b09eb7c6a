export { LocalSmsc as TestSmsc, type ReceiptOptions, type ReceivedSms, type RecordedSubmit } from "../../cli/dev-peers/smsc";
