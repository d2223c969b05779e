/** Errors of the kvm API carry errno-style codes, as KVM's ioctls do. */
export type Errno = 'EINVAL' | 'EEXIST' | 'ENOENT' | 'EFAULT' | 'EBUSY' | 'ENOMEM' | 'E2BIG' | 'EPERM' | 'ENOSPC';

export class KvmError extends Error {
  constructor(readonly code: Errno, message: string) {
    super(`${code}: ${message}`);
    this.name = 'KvmError';
  }
}
